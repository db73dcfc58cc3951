import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

/** The command names of the help's `Commands:` section. */
function listedCommands(help: string): string[] {
  const section = help.split(/^Commands:$/m)[1] ?? '';
  return [...section.matchAll(/^ {2}([a-z][\w-]*)/gm)].map((match) => match[1]!);
}

describe('projd --help', () => {
  it('exits 0 and lists the commands of the contract', async () => {
    const result = await runCli(['--help'], { cwd: os.tmpdir() });

    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(/^Usage: projd \[options\] \[command\]$/m);
    expect(listedCommands(result.stdout)).toEqual(
      expect.arrayContaining(['run', 'replay', 'status', 'migrate', 'append', 'query', 'failed', 'help']),
    );
  });

  it('projd failed --help exits 0 and lists list, retry and skip', async () => {
    const result = await runCli(['failed', '--help'], { cwd: os.tmpdir() });

    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(listedCommands(result.stdout)).toEqual(expect.arrayContaining(['list', 'retry', 'skip']));
  });

  it.each(['run', 'migrate', 'status', 'replay', 'verify', 'append', 'query', 'failed list', 'failed retry', 'failed skip'])(
    'projd %s --help exits 0 and lists -c, --config',
    async (command) => {
      const result = await runCli([...command.split(' '), '--help'], { cwd: os.tmpdir() });

      expect(result).toMatchObject({ code: 0, stderr: '' });
      expect(result.stdout).toMatch(new RegExp(`^Usage: projd ${command} \\[options\\]`, 'm'));
      expect(result.stdout).toMatch(/^ {2}-c, --config <file> {2,}\S/m);
    },
  );

  it('projd help run is the same as projd run --help', async () => {
    const [viaHelp, viaFlag] = await Promise.all([
      runCli(['help', 'run'], { cwd: os.tmpdir() }),
      runCli(['run', '--help'], { cwd: os.tmpdir() }),
    ]);

    expect(viaHelp).toMatchObject({ code: 0, stderr: '' });
    expect(viaHelp.stdout).toBe(viaFlag.stdout);
  });
});
