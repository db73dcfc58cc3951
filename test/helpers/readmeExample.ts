import { readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './cli.js';

/** The database URL the README's quick start shows: the one `npm start` prints for its server. */
export const README_DATABASE_URL = 'postgres://postgres:postgres@127.0.0.1:54329/postgres';

export interface QuickStart {
  /** The lines to paste, as the README shows them: `export DATABASE_URL=…`, then `npx projd …`. */
  commands: string[];
  /** The output the README shows right after them: the `projd query` line's. */
  queryOutput: string;
}

/**
 * The README's quick start, read from its "## Quick start" section: the first indented code
 * block of `export DATABASE_URL=` and `npx projd` lines, and the code block after it.
 */
export function readQuickStart(readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8')): QuickStart {
  const section = /^## Quick start\n([\s\S]*?)(?=^## )/m.exec(readme)?.[1];
  if (section === undefined) throw new Error('README.md has no "## Quick start" section');
  const blocks = [...section.matchAll(/(?:^ {4}.*\n)+/gm)].map((match) =>
    match[0].trimEnd().split('\n').map((line) => line.slice(4)),
  );
  const at = blocks.findIndex((lines) => lines.every((line) => /^(export DATABASE_URL=|npx projd )/.test(line)));
  const commands = blocks[at];
  const output = blocks[at + 1];
  if (at < 0 || commands === undefined || output === undefined) {
    throw new Error('README.md quick start: no block of `npx projd` lines followed by an output block');
  }
  return { commands, queryOutput: `${output.join('\n')}\n` };
}
