import { writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/embeddedPostgres.js';
import type { ProjectionStatus } from '../../src/status/readStatusReport.js';
import { runCli, startDaemon, type LogLine } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { writeProject, type Project } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

/** `balances`, handling `account.opened` and, with `credits`, `account.credited`. */
function balancesSource({ version, credits }: { version: number; credits: boolean }): string {
  const credited = `
    'account.credited': async (event, db) => {
      await db.query('update balances set balance = balance + $2 where id = $1', [event.streamId, event.data.amount]);
    },`;
  return `
import { defineProjection } from 'projd';

export default defineProjection({
  name: 'balances',
  version: ${version},
  setup: 'create table if not exists balances (id text primary key, balance bigint not null)',
  reset: 'truncate balances',
  handlers: {
    'account.opened': async (event, db) => {
      await db.query('insert into balances (id, balance) values ($1, 0)', [event.streamId]);
    },${credits ? credited : ''}
  },
});
`;
}

const REFUSAL =
  "projd: projection 'balances' handles other event types than its checkpoint was built with (added: account.credited): " +
  'bump its version to rebuild it, or run `projd replay balances`\n';

const db = await createTestDatabase();
let project: Project;
let metricsPort: number;

beforeAll(async () => {
  metricsPort = await freePort();
  project = await writeProject({
    'projd.yaml': `metrics:\n  port: ${metricsPort}\n`,
    'second.yaml': 'metrics:\n  port: 0\n',
    'projections/balances.ts': balancesSource({ version: 1, credits: false }),
  });
});

afterAll(async () => {
  await project?.cleanup();
});

const env = () => ({ DATABASE_URL: db.url });

async function writeBalances(options: { version: number; credits: boolean }): Promise<void> {
  await writeFile(project.path('projections/balances.ts'), balancesSource(options));
}

async function append(streamId: string, version: number, type: string, data: object = {}): Promise<void> {
  await db.pool.query('insert into projd.events (stream_id, stream_version, type, data) values ($1, $2, $3, $4)', [
    streamId,
    version,
    type,
    JSON.stringify(data),
  ]);
}

async function balance(): Promise<number | null> {
  const { rows } = await db.pool.query<{ balance: string }>("select balance::text from balances where id = 'acct-1'");
  return rows[0] ? Number(rows[0].balance) : null;
}

async function checkpoint(): Promise<{ version: number; position: string; selection: unknown }> {
  const { rows } = await db.pool.query<{ version: number; position: string; selection: unknown }>(
    "select version, position::text, selection from projd.checkpoints where projection = 'balances'",
  );
  return rows[0]!;
}

async function status(args: string[] = []) {
  const result = await runCli(['status', '--json', ...args], { cwd: project.dir, env: env() });
  return { ...result, balances: (JSON.parse(result.stdout) as ProjectionStatus[])[0]! };
}

const live = (line: LogLine) => line.msg === 'projection.state' && line.projection === 'balances' && line.to === 'live';

// Several daemon starts in a row each: slow on a busy machine, hence the longer test timeouts.
describe('a projection whose handlers changed without a version bump', () => {
  it('is refused at start, flagged by status, and put right by projd replay', { timeout: 120_000 }, async () => {
    await append('acct-1', 1, 'account.opened');
    await append('acct-1', 2, 'account.credited', { amount: 5 });
    await append('acct-1', 3, 'account.credited', { amount: 7 });

    // A daemon with the module as it was: credits are not its business.
    const old = startDaemon(['run'], { cwd: project.dir, env: env() });
    try {
      await old.waitForLog(live, 30_000);
      expect(await balance()).toBe(0);
      expect((await checkpoint()).selection).toEqual({ types: ['account.opened'] });

      // A handler added, the version left at 1: the credits behind the checkpoint would never be applied.
      await writeBalances({ version: 1, credits: true });
      // (Its own metrics port: the first daemon holds the usual one.)
      const refused = await runCli(['run', '-c', 'second.yaml'], { cwd: project.dir, env: env(), timeoutMs: 20_000 });
      expect(refused).toMatchObject({ code: 2, stdout: expect.not.stringContaining('daemon.started'), stderr: REFUSAL });

      const flagged = await status(['--check']);
      expect(flagged.code).toBe(1);
      expect(flagged.balances).toMatchObject({
        rebuildPending: false,
        problem:
          'its handlers read other event types than its checkpoint was built with (added: account.credited) and a daemon refuses to run it: bump its version to rebuild it, or run `projd replay balances`',
      });
      expect(flagged.stderr).toBe(`projd: check failed: projection 'balances': ${flagged.balances.problem}\n`);
      const table = await runCli(['status'], { cwd: project.dir, env: env() });
      expect(table.stdout).toMatch(/^balances +1 +\S+ .*its handlers read other event types .*\(added: account\.credited\)/m);

      // One way out, not refused: a replay with the new handlers, which records them.
      const replay = await runCli(['replay', 'balances'], { cwd: project.dir, env: env() });
      expect(replay.code).toBe(0);
      expect(await balance()).toBe(12);
      expect((await checkpoint()).selection).toEqual({ types: ['account.credited', 'account.opened'] });

      // The daemon still running the old handlers does not apply on without the credits: it refuses, pass after pass.
      const refusing = await old.waitForLog((line) => line.msg?.startsWith('batch.failed: ') === true, 30_000);
      expect(refusing).toMatchObject({
        level: 50,
        projection: 'balances',
        msg:
          "batch.failed: projection 'balances': its checkpoint is now built with account.credited, which this daemon does not handle; " +
          'this daemon applies nothing to it until restarted with the current projection code',
      });
      await append('acct-1', 4, 'account.credited', { amount: 3 });
    } finally {
      expect(await old.stop()).toBe(0);
    }

    // A checkpoint from before projd recorded selections is taken as it is, and recorded.
    await db.pool.query("update projd.checkpoints set selection = null where projection = 'balances'");
    const current = startDaemon(['run'], { cwd: project.dir, env: env() });
    try {
      const recorded = await current.waitForLog('checkpoint.selection_recorded', 30_000);
      expect(recorded).toMatchObject({ projection: 'balances', types: ['account.credited', 'account.opened'] });
      await waitFor(async () => (await balance()) === 15, { timeoutMs: 30_000, message: 'the last credit applied' });
      expect((await checkpoint()).selection).toEqual({ types: ['account.credited', 'account.opened'] });
    } finally {
      expect(await current.stop()).toBe(0);
    }
    const fine = await status(['--check']);
    expect(fine).toMatchObject({ code: 0, stderr: '' });
    expect(fine.balances).toMatchObject({ state: 'live', problem: null, rebuildPending: false });
  });
});

describe('a projection whose version changed', () => {
  it('shows a pending rebuild while a daemon runs the old version, and an older module is an error', { timeout: 120_000 }, async () => {
    const running = startDaemon(['run'], { cwd: project.dir, env: env() });
    try {
      await running.waitForLog(live, 30_000);

      await writeBalances({ version: 2, credits: true });
      const pending = await status(['--check']);
      expect(pending).toMatchObject({ code: 0, stderr: '' });
      expect(pending.balances).toMatchObject({ version: 2, storedVersion: 1, rebuildPending: true, problem: null });
      expect(pending.balances.state).not.toBe('live'); // version 2 has applied nothing yet
      const table = await runCli(['status'], { cwd: project.dir, env: env() });
      expect(table.stdout).toMatch(
        /^balances +2 \(stored 1\) +\S+ .* rebuild pending: version 2 loaded, store at 1; a daemon restart rebuilds it$/m,
      );
    } finally {
      expect(await running.stop()).toBe(0);
    }

    const rebuilt = startDaemon(['run'], { cwd: project.dir, env: env() });
    try {
      // Version 2 is built beside version 1, then swapped in.
      await rebuilt.waitForLog((line) => String(line.msg).startsWith('build.swapped'), 30_000);
      await waitFor(async () => (await balance()) === 15, { timeoutMs: 30_000, message: 'balances rebuilt' });
      // The build replayed the store, and says how many events it applied and how fast.
      const { rows } = await db.pool.query<{ count: string }>(
        `select count(*) from projd.events where type in ('account.opened', 'account.credited')`,
      );
      const done = await rebuilt.waitForLog(
        (line) => String(line.msg).startsWith('build.done') && line.projection === 'balances:build',
      );
      expect(done).toMatchObject({ events: Number(rows[0]!.count), rate: expect.any(Number) });
      expect(done.rate).toBeGreaterThan(0);
    } finally {
      expect(await rebuilt.stop()).toBe(0);
    }
    expect((await status()).balances).toMatchObject({ version: 2, storedVersion: 2, rebuildPending: false, problem: null });

    // Back to version 1 (an old deploy, a reverted file): the store is at 2.
    await writeBalances({ version: 1, credits: true });
    const older = startDaemon(['run'], { cwd: project.dir, env: env() });
    try {
      const behind = await older.waitForLog((line) => line.msg?.startsWith('projection.version_behind') === true, 30_000);
      expect(behind).toMatchObject({ level: 50, projection: 'balances', version: 1, storedVersion: 2 });
      await older.waitForLog('http.listening', 30_000);
      const readyz = await fetch(`http://127.0.0.1:${metricsPort}/readyz`);
      expect(readyz.status).toBe(503);
      expect(await readyz.text()).toBe('the store holds a newer version of: balances (version 1)\n');
    } finally {
      expect(await older.stop()).toBe(0);
    }
    const flagged = await status(['--check']);
    expect(flagged.code).toBe(1);
    expect(flagged.balances).toMatchObject({ version: 1, storedVersion: 2, rebuildPending: false });
    expect(flagged.stderr).toBe(
      "projd: check failed: projection 'balances': version 1 loaded, but the store holds version 2, written by newer code: a daemon running this version leaves it alone; run the newer code\n",
    );
  });
});
