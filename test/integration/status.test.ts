import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStatus } from '../../src/operations/readStatus.js';
import { loadConfig } from '../../src/config/loadConfig.js';
import type { ProjectionStatus } from '../../src/status/readStatusReport.js';
import { runCli, startDaemon } from '../helpers/cli.js';
import { createTestDatabase, startIsolatedPostgres } from '../helpers/database.js';
import { appendLedgerEvents, ledgerProjectionSource } from '../helpers/ledger.js';
import { writeProject, type Project } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

// A projection whose handler waits for advisory lock GATE_LOCK: while the test holds that
// lock, a daemon's batch of `gate` stays in flight, holding the projection's own lock.
const GATE_LOCK = 4242;
const GATE_PROJECTION = `
import { defineProjection } from 'projd';

export default defineProjection({
  name: 'gate',
  version: 1,
  handlers: {
    'gate.wait': async (_event, db) => {
      await db.query('select pg_advisory_xact_lock_shared(${GATE_LOCK})');
    },
  },
});
`;

const STATUS_FIELDS = [
  'name',
  'version',
  'storedVersion',
  'rebuildPending',
  'problem',
  'state',
  'position',
  'headPosition',
  'lagEvents',
  'lagSeconds',
  'failedEvents',
  'updatedAt',
  'owner',
  'blockedBy',
  'lastError',
  'lastErrorAt',
  'stalledBy',
  'build',
].sort();

// The gate projection holds a batch (a transaction with an id) open, which holds back the xmin
// horizon of the whole server, so this file gets a server of its own.
const db = await startIsolatedPostgres();
let project: Project;

beforeAll(async () => {
  // A short poll interval: a checkpoint that has not moved for 200 ms no longer counts as a daemon at work.
  project = await writeProject({
    'projd.yaml': 'projections:\n  pollInterval: 100ms\nmetrics:\n  port: 0\n',
    'strict.yaml': 'projections:\n  pollInterval: 100ms\nhealth:\n  maxLag: 1ms\n',
    'projections/ledger.ts': await ledgerProjectionSource(),
    'projections/gate.ts': GATE_PROJECTION,
  });
});

afterAll(async () => {
  await project?.cleanup();
  await db.stop();
});

async function statusOf(url: string): Promise<Record<string, ProjectionStatus>> {
  const config = await loadConfig({ cwd: project.dir, env: { DATABASE_URL: url } });
  return Object.fromEntries((await readStatus(config)).map((status) => [status.name, status]));
}

async function statusCli(url: string, args: string[] = []) {
  const result = await runCli(['status', ...args], { cwd: project.dir, env: { DATABASE_URL: url } });
  const json = args.includes('--json') ? (JSON.parse(result.stdout) as ProjectionStatus[]) : [];
  return { ...result, byName: Object.fromEntries(json.map((status) => [status.name, status])) };
}

describe('projd status', () => {
  it('reports projections no daemon has set up as stopped, with the lag counted from the start', async () => {
    await appendLedgerEvents(db.pool, { count: 3, streams: 3 });

    const result = await statusCli(db.url, ['--json', '--check']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(Object.keys(result.byName)).toEqual(['gate', 'ledger']); // file-name order
    expect(Object.keys(result.byName.ledger!).sort()).toEqual(STATUS_FIELDS);
    expect(result.byName.ledger).toMatchObject({
      version: 1,
      storedVersion: null,
      rebuildPending: false,
      problem: null,
      state: 'stopped',
      position: '0',
      headPosition: '3',
      lagEvents: '3',
      failedEvents: 0,
      updatedAt: null,
      owner: null,
      stalledBy: null,
    });
    expect(result.byName.ledger!.lagSeconds).toBeGreaterThan(0);
    expect(result.byName.gate).toMatchObject({ state: 'stopped', lagEvents: '0', lagSeconds: 0 });

    const table = await statusCli(db.url);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME +VERSION +STATE +POSITION +HEAD +LAG +LAG TIME +PARKED +OWNER +NOTE$/);
    expect(lines.slice(1).map((line) => line.split(/ +/).slice(0, 7))).toEqual([
      ['gate', '1', 'stopped', '0', '3', '0', '0s'],
      ['ledger', '1', 'stopped', '0', '3', '3', expect.stringMatching(/s$/)],
    ]);
  });

  it('shows catching_up with the daemon that owns a batch in flight, and live once caught up', async () => {
    const gateHolder = await db.pool.connect();
    try {
      await gateHolder.query(`select pg_advisory_lock(${GATE_LOCK})`);
      await db.pool.query(`insert into projd.events (stream_id, stream_version, type, data) values ('gate-1', 1, 'gate.wait', '{}')`);
      const daemon = startDaemon(['run'], { cwd: project.dir, env: { DATABASE_URL: db.url } });
      try {
        // As the daemon names its connection for the length of a batch; PostgreSQL keeps 63 bytes of it.
        const owner = `projd batch ${os.hostname()}:${daemon.child.pid}`.slice(0, 63);
        await waitFor(
          async () => {
            const status = await statusOf(db.url);
            return status.ledger?.state === 'live' && status.gate?.owner?.applicationName === owner;
          },
          { timeoutMs: 30_000, message: 'ledger live and gate owned by the daemon' },
        );

        // The live ledger's daemon still takes its lock for a short pass every pollInterval
        // (100 ms here): read until a look falls between two of them.
        const result = await waitFor(
          async () => {
            const read = await statusCli(db.url, ['--json', '--check']);
            return read.byName.ledger?.owner === null ? read : undefined;
          },
          { timeoutMs: 30_000, message: 'a status read between two of the ledger daemon passes' },
        );
        expect(result).toMatchObject({ code: 0, stderr: '' });
        expect(result.byName.gate).toMatchObject({ state: 'catching_up', lagEvents: '1', owner: { applicationName: owner } });
        expect(result.byName.gate!.owner!.pid).toEqual(expect.any(Number));
        expect(result.byName.ledger).toMatchObject({
          state: 'live',
          storedVersion: 1,
          // Past the gate event too: a checkpoint skips the events of other types it scanned.
          position: '4',
          headPosition: '4',
          lagEvents: '0',
          lagSeconds: 0,
          owner: null,
        });
        expect(Date.parse(result.byName.ledger!.updatedAt!)).not.toBeNaN();
        const table = await statusCli(db.url);
        expect(table.stdout).toMatch(new RegExp(`^gate +1 +catching_up .* ${owner.slice('projd batch '.length)}$`, 'm'));

        await gateHolder.query(`select pg_advisory_unlock(${GATE_LOCK})`);
        await waitFor(async () => (await statusOf(db.url)).gate?.state === 'live', {
          timeoutMs: 10_000,
          message: 'gate live once its batch could go on',
        });
      } finally {
        expect(await daemon.stop()).toBe(0);
      }
    } finally {
      gateHolder.release();
    }

    // Caught up is caught up, with or without a daemon.
    const after = await statusCli(db.url, ['--json', '--check']);
    expect(after.code).toBe(0);
    expect([after.byName.gate?.state, after.byName.ledger?.state]).toEqual(['live', 'live']);
  });

  it('shows stopped when events wait and no daemon runs, and --check fails once they wait past health.maxLag', async () => {
    await appendLedgerEvents(db.pool, { count: 2, streams: 3 });
    await waitFor(async () => (await statusOf(db.url)).ledger?.state === 'stopped', {
      timeoutMs: 10_000,
      message: 'ledger stopped once its last checkpoint move is older than two poll intervals',
    });

    const relaxed = await statusCli(db.url, ['--json', '--check']);
    expect(relaxed).toMatchObject({ code: 0, stderr: '' });
    expect(relaxed.byName.ledger).toMatchObject({ state: 'stopped', position: '4', headPosition: '6', lagEvents: '2' });

    const strict = await statusCli(db.url, ['--json', '--check', '-c', 'strict.yaml']);
    expect(strict.code).toBe(1);
    expect(strict.byName.ledger?.state).toBe('stopped');
    expect(strict.stderr).toMatch(/^projd: check failed: projection 'ledger' lags \S+, more than health\.maxLag \(<0\.1s\)\n$/);

    // Without --check, status only reports.
    expect((await statusCli(db.url, ['-c', 'strict.yaml'])).code).toBe(0);
  });

  it('shows failed when the checkpoint is blocked by a parked event, and --check exits 1', async () => {
    const { rows } = await db.pool.query<{ id: string }>(`
      insert into projd.failed_events (projection, position, transaction_id, stream_id, type, error_class, error_message)
      select 'ledger', position, transaction_id, stream_id, type, 'handler', 'amount must be positive'
        from projd.events where type like 'account.%' order by position desc limit 1
      returning id::text`);
    const id = rows[0]!.id;
    await db.pool.query(
      `update projd.checkpoints set blocked_by = $1, last_error = 'amount must be positive', last_error_at = now()
        where projection = 'ledger'`,
      [id],
    );

    const result = await statusCli(db.url, ['--json', '--check']);
    expect(result.code).toBe(1);
    expect(result.byName.ledger).toMatchObject({
      state: 'failed',
      failedEvents: 1,
      blockedBy: id,
      lastError: 'amount must be positive',
    });
    expect(Date.parse(result.byName.ledger!.lastErrorAt!)).not.toBeNaN();
    expect(result.stderr).toBe(`projd: check failed: projection 'ledger' is failed: stopped at failed event ${id}\n`);

    const table = await statusCli(db.url);
    expect(table.stdout).toMatch(
      new RegExp(`^ledger +1 +failed +4 +6 +2 +\\S+ +1 +- +stopped at failed event ${id}: amount must be positive$`, 'm'),
    );
  });

  it('exits 2 with one line on a database without projd tables', async () => {
    const empty = await createTestDatabase({ empty: true });
    const result = await statusCli(empty.url);
    expect(result).toMatchObject({
      code: 2,
      stdout: '',
      stderr: "projd: projd's tables are missing or out of date in this database: run `projd migrate`\n",
    });
  });
});
