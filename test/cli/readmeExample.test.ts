import { spawn } from 'node:child_process';
import { cp } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shellWord } from '../../scripts/quickStart.js';
import { REPO_ROOT, startDaemon, type LogLine } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { writeProject, type Project } from '../helpers/project.js';
import { README_DATABASE_URL, readQuickStart } from '../helpers/readmeExample.js';
import { waitFor } from '../helpers/waitFor.js';

// The README's quick start, as a user follows it: a new empty database, the repository's own
// example projections under `projd run`, and in another shell, in the projd folder, the lines
// the README shows, run by sh and npx as they stand. Only the URL is this test's database.
const db = await createTestDatabase({ empty: true });
const quickStart = readQuickStart();
let project: Project;

beforeAll(async () => {
  project = await writeProject({ 'projd.yaml': 'metrics:\n  port: 0\n' });
  // The two examples only: projections/ is the user's, and may hold projections of their own.
  for (const file of ['balances.ts', 'deposits.yaml']) {
    await cp(path.join(REPO_ROOT, 'projections', file), project.path(`projections/${file}`));
  }
});

afterAll(async () => {
  await project?.cleanup();
});

const isLive = (name: string) => (line: LogLine) =>
  line.msg === 'projection.state' && line.projection === name && line.to === 'live';

interface ShellResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `script` with sh in the projd folder, without the suite's DATABASE_URL; npx may not download. */
function sh(script: string, timeoutMs = 60_000): Promise<ShellResult> {
  const { DATABASE_URL: _suite, FORCE_COLOR: _color, ...env } = process.env;
  const child = spawn('sh', ['-c', script], {
    cwd: REPO_ROOT,
    env: { ...env, NO_COLOR: '1', npm_config_offline: 'true', npm_config_update_notifier: 'false' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`sh -c ${script} did not exit within ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('the README quick start', () => {
  it('runs as written, with nothing but Node: appends, shows the read model, status and a replay', { timeout: 180_000 }, async () => {
    const [exportLine, ...lines] = quickStart.commands;
    expect(exportLine).toBe(`export DATABASE_URL=${README_DATABASE_URL}`);
    const setUrl = `export DATABASE_URL=${shellWord(db.url)}`;
    const run = async (line: string): Promise<ShellResult> => {
      const result = await sh(`${setUrl}\n${line}`);
      expect(result.code, `${line}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`).toBe(0);
      return result;
    };
    const appends = lines.filter((line) => line.startsWith('npx projd append '));
    const query = lines.find((line) => line.startsWith('npx projd query '));
    expect(lines).toEqual([...appends, query, 'npx projd status', 'npx projd replay balances']);

    const daemon = startDaemon(['run'], { cwd: project.dir, env: { DATABASE_URL: db.url } });
    await daemon.waitForLog(isLive('balances'), 30_000);
    await daemon.waitForLog(isLive('deposits'), 30_000);

    const appended = [];
    for (const line of appends) appended.push((await run(line)).stdout);
    expect(appended).toEqual([
      'appended account-1@1 (account.opened) at position 1\n',
      'appended account-1@2 (account.credited) at position 2\n',
    ]);
    await waitFor(
      async () => {
        const { rows } = await db.pool.query('select balance, updated_position from balances');
        return rows.length === 1 && rows[0].balance === '100' && rows[0].updated_position === '2';
      },
      { timeoutMs: 10_000, message: 'balances to show account-1 with balance 100' },
    );
    expect((await run(query!)).stdout).toBe(quickStart.queryOutput);
    const { rows: deposits } = await db.pool.query('select * from deposits');
    expect(deposits).toEqual([{ account_id: 'account-1', count: 1, total: '100' }]);

    expect((await run('npx projd status')).stdout).toMatch(/^balances\s+1\s+live\s+/m);
    expect((await run('npx projd replay balances')).stdout).toMatch(/^replayed balances: 2 events in /m);
    const { rows: rebuilt } = await db.pool.query('select account_id, owner, balance from balances');
    expect(rebuilt).toEqual([{ account_id: 'account-1', owner: 'Ada', balance: '100' }]);

    expect(await daemon.stop('SIGTERM')).toBe(0);
  });
});
