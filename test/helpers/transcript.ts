import { realpathSync } from 'node:fs';
import os from 'node:os';
import type { CliResult } from './cli.js';

/** What to replace in a transcript, in order: a string everywhere it occurs, or a global RegExp. */
export type Replacements = ReadonlyArray<readonly [string | RegExp, string]>;

/**
 * A CLI run as a transcript to snapshot (attw `cli/test/snapshots.test.ts`): the command, its
 * stderr and its exit code. `replacements` come first (a test's own temp dir, ports), then the
 * machine's: the temp folder, `<host>:<pid>` as in application names, `pid 1234`.
 *
 *     $ projd run -c projd.yaml
 *     projd: projd.yaml: metrics.port must be an integer from 0 to 65535, got "abc"
 *     Exit code: 2
 */
export function cliTranscript(args: readonly string[], result: CliResult, replacements: Replacements = []): string {
  const command = ['projd', ...args].map(quoteArgument).join(' ');
  const exit = result.code === null ? `Signal: ${result.signal}` : `Exit code: ${result.code}`;
  return normalize(`$ ${command}\n${result.stderr.trimEnd()}\n${exit}`, replacements);
}

function normalize(text: string, replacements: Replacements): string {
  const machine: Replacements = [
    ...temporaryFolders().map((folder) => [folder, '<tmp>'] as const),
    [new RegExp(`(?<![\\w.-])${escapeRegExp(os.hostname())}:\\d+`, 'g'), '<host>:<pid>'],
    [/\bpid (\d+)/g, 'pid <pid>'],
  ];
  let normalized = text;
  for (const [from, to] of [...replacements, ...machine]) {
    normalized = typeof from === 'string' ? normalized.replaceAll(from, to) : normalized.replace(from, to);
  }
  return normalized;
}

/** The temp folder as Node names it and as it really is, longest first. */
function temporaryFolders(): string[] {
  const named = os.tmpdir();
  const real = realpathSync(named);
  return [...new Set([named, real])].sort((a, b) => b.length - a.length);
}

function quoteArgument(argument: string): string {
  return /^[\w@%+=:,./-]+$/.test(argument) ? argument : `'${argument.replaceAll("'", `'\\''`)}'`;
}

export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
