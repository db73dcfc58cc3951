import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { CONFIG_KEYS } from '../../src/config/loadConfig.js';
import { quickStartCommands } from '../../scripts/quickStart.js';
import { README_DATABASE_URL, readQuickStart } from '../helpers/readmeExample.js';

// The docs name what the code does: the README's quick start is what `npm start` prints (the
// CLI test runs it), every config key and command is documented, and no relative link is dead.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOC_FILES = [
  'README.md',
  ...readdirSync(path.join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`),
];

function read(file: string): string {
  return readFileSync(path.join(ROOT, file), 'utf8');
}

/** The markdown without fenced code blocks and inline code, where `[x](y)` is not a link. */
function prose(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`[^`\n]*`/g, '');
}

/** Every command's full name, subcommands included: `run`, …, `failed list`. */
function commandPaths(command: Command, prefix: string[] = []): string[] {
  return command.commands.flatMap((sub) => {
    const own = [...prefix, sub.name()];
    return [own.join(' '), ...commandPaths(sub, own)];
  });
}

/** The text of every markdown heading, without its `#`s and backticks. */
function headings(markdown: string): string[] {
  const withoutCode = markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
  return [...withoutCode.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)].map((match) => match[1]!.replaceAll('`', '').trim());
}

describe('README', () => {
  it('quick start shows the lines npm start prints, for the server npm start runs', () => {
    expect(readQuickStart(read('README.md')).commands).toEqual(quickStartCommands(README_DATABASE_URL));
  });
});

describe('docs/configuration.md', () => {
  const text = read('docs/configuration.md');

  it.each(CONFIG_KEYS.map((key) => [key]))('documents %s', (key) => {
    expect(text).toContain(`\`${key}\``);
  });
});

describe('docs/cli.md', () => {
  const documented = headings(read('docs/cli.md'));
  const paths = commandPaths(buildProgram());

  it('finds the commands of the CLI', () => {
    expect(paths).toEqual(expect.arrayContaining(['run', 'migrate', 'status', 'replay', 'failed', 'failed list']));
  });

  it.each(paths.map((name) => [name]))('has a heading for projd %s', (name) => {
    expect(documented).toContain(`projd ${name}`);
  });
});

describe('relative links', () => {
  it.each(DOC_FILES.map((file) => [file]))('in %s point at files that exist', (file) => {
    const links = [...prose(read(file)).matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((match) => match[1]!);
    const dead = links
      .filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target) && !target.startsWith('#'))
      .filter((target) => {
        const relative = decodeURIComponent(target.split('#', 1)[0]!);
        return !existsSync(path.resolve(ROOT, path.dirname(file), relative));
      });
    expect(dead).toEqual([]);
  });
});
