import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/embeddedPostgres.js';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/loadConfig.js';
import { defineProjection } from '../../src/projection/defineProjection.js';
import { toStatusReport, type ProjectionStatus } from '../../src/status/readStatusReport.js';
import { readProgress } from '../../src/store/progress.js';
import { runCli, startDaemon } from '../helpers/cli.js';
import { startIsolatedPostgres, type IsolatedPostgres } from '../helpers/database.js';
import { appendLedgerEvents, ledgerProjectionSource } from '../helpers/ledger.js';
import { writeProject, type Project } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

// Writers whose transactions overlap, and a transaction left open, hold back the xmin horizon
// of the whole server: these tests get a server of their own.
let server: IsolatedPostgres;
let project: Project;
let metricsPort: number;

const POLL_INTERVAL_MS = 100;
/** `health.stallAfter` as projd.yaml leaves it: the default. */
let defaultStallAfter: number;
const SHORT_STALL_AFTER_MS = 1000;

// The ledger fixture as `status` sees it: only its name, version and handled types matter here.
const ledger = defineProjection({
  name: 'ledger',
  version: 1,
  handlers: { 'account.credited': () => {}, 'account.debited': () => {} },
});

beforeAll(async () => {
  server = await startIsolatedPostgres();
  metricsPort = await freePort();
  project = await writeProject({
    // health.stallAfter left at its default.
    'projd.yaml': `projections:\n  pollInterval: ${POLL_INTERVAL_MS}ms\nmetrics:\n  port: ${metricsPort}\n`,
    'relaxed.yaml': `projections:\n  pollInterval: ${POLL_INTERVAL_MS}ms\nhealth:\n  stallAfter: 10m\n`,
    'short.yaml': `projections:\n  pollInterval: ${POLL_INTERVAL_MS}ms\nhealth:\n  stallAfter: ${SHORT_STALL_AFTER_MS}ms\n`,
    'projections/ledger.ts': await ledgerProjectionSource(),
  });
  defaultStallAfter = (await loadConfig({ cwd: project.dir, env: { DATABASE_URL: server.url } })).health.stallAfter;
});

afterAll(async () => {
  await project?.cleanup();
  await server?.stop();
});

/** What `status` derives right now, and whether the ledger's next event is held back at all. */
async function observe(stallAfter: number): Promise<{ ledger: ProjectionStatus; heldBack: boolean }> {
  const progress = await readProgress(server.pool, [ledger]);
  const report = toStatusReport(progress, [ledger], { pollInterval: POLL_INTERVAL_MS, stallAfter });
  return { ledger: report.projections[0]!, heldBack: progress.projections[0]!.oldestUnapplied?.heldBack ?? false };
}

async function statusCli(args: string[]) {
  const result = await runCli(['status', ...args], { cwd: project.dir, env: { DATABASE_URL: server.url } });
  const json = args.includes('--json') ? (JSON.parse(result.stdout) as ProjectionStatus[]) : [];
  return { ...result, ledger: json.find((status) => status.name === 'ledger') };
}

/** Runs `poll` back to back, at most every `everyMs`, until `until` settles; returns what each returned. */
async function pollUntil<T>(until: Promise<unknown>, everyMs: number, poll: () => Promise<T>): Promise<T[]> {
  let done = false;
  void until.finally(() => (done = true));
  const results: T[] = [];
  while (!done) {
    const started = Date.now();
    results.push(await poll());
    // Pacing, not synchronisation: the polls sample whatever the writers are doing.
    const rest = everyMs - (Date.now() - started);
    if (rest > 0 && !done) await new Promise((resolve) => setTimeout(resolve, rest));
  }
  return results;
}

describe('projd status under ordinary traffic', () => {
  it('never reports stalled, in status --check, /metrics or the daemon log, while commits overlap', { timeout: 120_000 }, async () => {
    const daemon = startDaemon(['run'], { cwd: project.dir, env: { DATABASE_URL: server.url } });
    const writersPool = new pg.Pool({ connectionString: server.url, max: 9 });
    writersPool.on('error', () => {});
    try {
      await daemon.waitForLog('daemon.started', 30_000);
      await waitFor(async () => (await observe(defaultStallAfter)).ledger.state === 'live', {
        timeoutMs: 15_000,
        message: 'ledger set up and live',
      });

      // One instant of that traffic, held still: a transaction took its id, then a later one
      // committed an event. That event waits behind the first for as long as it stays open.
      const first = await writersPool.connect();
      try {
        await first.query('begin');
        await first.query(
          `insert into projd.events (stream_id, stream_version, type, data) values ('first', 1, 'account.credited', '{"amount": 1}')`,
        );
        await appendLedgerEvents(writersPool, { count: 1, streams: 1, prefix: 'second' });
        const instant = await observe(defaultStallAfter);
        expect(instant.heldBack).toBe(true);
        expect(instant.ledger.state).not.toBe('stalled');
        expect(instant.ledger.stalledBy).toBeNull();
        // The same through the CLI, with a threshold no CLI start-up can outlast on a busy machine.
        const check = await statusCli(['--json', '--check', '-c', 'relaxed.yaml']);
        expect(check).toMatchObject({ code: 0, stderr: '' });
        expect(check.ledger!.state).not.toBe('stalled');
        await first.query('commit');
      } finally {
        await first.query('rollback').catch(() => undefined); // after a failed assertion
        first.release();
      }
      const logsBeforeTraffic = daemon.logs().length;

      // Eight writers; each transaction appends one event and commits about 100 ms later, so
      // their commits overlap and an event often waits a moment behind another's transaction.
      const stopAt = Date.now() + 5000;
      const writers = Promise.all(
        Array.from({ length: 8 }, async (_, writer) => {
          const client = await writersPool.connect();
          try {
            for (let version = 1; Date.now() < stopAt; version += 1) {
              await client.query('begin');
              await client.query(
                `insert into projd.events (stream_id, stream_version, type, data)
                 values ($1, $2, 'account.credited', '{"amount": 1}')`,
                [`writer-${writer}`, version],
              );
              // The workload itself: a transaction that stays open ~100 ms (jittered) before it commits.
              await new Promise((resolve) => setTimeout(resolve, 75 + Math.random() * 50));
              await client.query('commit');
            }
          } finally {
            client.release();
          }
        }),
      );

      const [checks, observations, scrapes] = await Promise.all([
        pollUntil(writers, 200, () => statusCli(['--json', '--check'])),
        pollUntil(writers, 20, () => observe(defaultStallAfter)),
        pollUntil(writers, 200, async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()),
        writers,
      ]);

      expect(observations.filter((observation) => observation.ledger.state === 'stalled')).toEqual([]);
      expect(checks.length).toBeGreaterThan(0);
      expect(checks.filter((check) => check.code !== 0 || check.ledger?.state === 'stalled')).toEqual([]);
      expect(scrapes.length).toBeGreaterThan(0);
      for (const text of scrapes) {
        expect(text).toContain('projd_projection_state{projection="ledger",state="stalled"} 0');
      }
      const stalledLogs = daemon
        .logs()
        .slice(logsBeforeTraffic)
        .filter((line) => line.msg === 'projection.state' && line.to === 'stalled');
      expect(stalledLogs).toEqual([]);

      await waitFor(async () => (await observe(defaultStallAfter)).ledger.state === 'live', {
        timeoutMs: 30_000,
        message: 'ledger live once the writers stopped',
      });
    } finally {
      await writersPool.end();
      expect(await daemon.stop()).toBe(0);
    }
  });
});

describe('projd status on a server with a long-running transaction', () => {
  it('reports stalled within health.stallAfter plus a second, names the transaction, and --check exits 1', async () => {
    let holder: pg.PoolClient | undefined;
    try {
      // The ledger's checkpoint at the end of the store, as a daemon's that has applied everything.
      await server.pool.query(`
        insert into projd.checkpoints (projection, version, era, transaction_id, position)
        select 'ledger', 1, e.era, e.transaction_id, e.position
          from (select era, transaction_id, position from projd.events union all select 0, '0'::xid8, 0) e
         order by e.era desc, e.transaction_id desc, e.position desc
         limit 1
        on conflict (projection, part) do update
           set era = excluded.era, transaction_id = excluded.transaction_id, position = excluded.position`);
      holder = await server.pool.connect();
      await holder.query('begin');
      const { rows } = await holder.query<{ pid: number }>('select pg_backend_pid() as pid');
      await holder.query('select pg_current_xact_id()');
      const pid = rows[0]!.pid;
      await appendLedgerEvents(server.pool, { count: 1, streams: 1, prefix: 'late' });
      const appendedAt = Date.now();

      // Held back, but only just: a commit in flight, not a stall.
      const early = await observe(SHORT_STALL_AFTER_MS);
      expect(early.heldBack).toBe(true);
      expect(early.ledger.state).not.toBe('stalled');
      expect(early.ledger.stalledBy).toBeNull();

      await waitFor(async () => (await observe(SHORT_STALL_AFTER_MS)).ledger.state === 'stalled', {
        timeoutMs: SHORT_STALL_AFTER_MS + 5000,
        intervalMs: 20,
        message: 'ledger stalled once its event waited past health.stallAfter',
      });
      const reportedAfterMs = Date.now() - appendedAt;
      expect(reportedAfterMs).toBeGreaterThan(SHORT_STALL_AFTER_MS - 250);
      expect(reportedAfterMs).toBeLessThanOrEqual(SHORT_STALL_AFTER_MS + 1000);

      const stalled = await statusCli(['--json', '--check', '-c', 'short.yaml']);
      expect(stalled.code).toBe(1);
      expect(stalled.ledger).toMatchObject({
        state: 'stalled',
        lagEvents: '1',
        stalledBy: { pid, state: 'idle in transaction', query: 'select pg_current_xact_id()', database: 'postgres' },
      });
      expect(stalled.ledger!.stalledBy!.transactionAgeSeconds).toBeGreaterThan(SHORT_STALL_AFTER_MS / 1000);
      expect(stalled.stderr).toMatch(
        new RegExp(
          `^projd: check failed: projection 'ledger' is stalled: held back by pid ${pid} \\(idle in transaction, open \\S+, database postgres\\): select pg_current_xact_id\\(\\)\\n$`,
        ),
      );
      expect((await statusCli(['-c', 'short.yaml'])).stdout).toContain(`held back by pid ${pid} (idle in transaction`);

      await holder.query('commit');
      const released = await statusCli(['--json', '--check', '-c', 'short.yaml']);
      expect(released).toMatchObject({ code: 0, stderr: '' });
      expect(released.ledger).toMatchObject({ state: 'stopped', lagEvents: '1', stalledBy: null });
    } finally {
      holder?.release();
    }
  });
});

describe('the daemon on a server with a long-running transaction', () => {
  it('keeps its runner live while events are held back, and reports stalled only past health.stallAfter', async () => {
    const config = await loadConfig({ cwd: project.dir, env: { DATABASE_URL: server.url }, file: 'short.yaml' });
    config.metrics.port = 0;
    const app = createApp(config, { projections: [ledger] });
    let holder: pg.PoolClient | undefined;
    try {
      await app.start();
      await app.caughtUp();
      const state = () => app.projections()[0]!.state;
      expect(state()).toBe('live');

      holder = await server.pool.connect();
      await holder.query('begin');
      await holder.query('select pg_current_xact_id()');
      await appendLedgerEvents(server.pool, { count: 1, streams: 1, prefix: 'held' });
      const appendedAt = Date.now();
      // Notified of the append, the runner looks, finds the event held back, and looks again
      // every 20 ms doubling up to the poll interval; only past stallAfter is that a stall.
      await waitFor(() => state() === 'stalled', {
        timeoutMs: SHORT_STALL_AFTER_MS + 5000,
        intervalMs: 10,
        message: 'runner stalled once the event waited past health.stallAfter',
      });
      const stalledAfterMs = Date.now() - appendedAt;
      expect(stalledAfterMs).toBeGreaterThanOrEqual(SHORT_STALL_AFTER_MS - 50);
      expect(stalledAfterMs).toBeLessThanOrEqual(SHORT_STALL_AFTER_MS + POLL_INTERVAL_MS + 1000);

      await holder.query('commit');
      await waitFor(() => state() === 'live', { timeoutMs: 10_000, message: 'runner live once the transaction ended' });
    } finally {
      await holder?.query('rollback').catch(() => undefined);
      holder?.release();
      await app.stop();
    }
  });
});
