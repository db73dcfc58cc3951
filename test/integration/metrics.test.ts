import net from 'node:net';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/embeddedPostgres.js';
import { runCli, startDaemon } from '../helpers/cli.js';
import { startIsolatedPostgres, type IsolatedPostgres } from '../helpers/database.js';
import { appendLedgerEvents, ledgerProjectionSource } from '../helpers/ledger.js';
import { writeProject, type Project } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

// A projection of a type nobody writes: its series must exist all the same, at zero.
const IDLE_PROJECTION = `
import { defineProjection } from 'projd';

export default defineProjection({
  name: 'idle',
  version: 1,
  handlers: { 'never.written': async () => {} },
});
`;

const EVENTS = 25;

// The test holds a transaction open to keep the daemon from catching up, which holds back the
// xmin horizon of the whole server: it gets a server of its own.
let server: IsolatedPostgres;
let project: Project;
let port: number;

beforeAll(async () => {
  server = await startIsolatedPostgres();
  port = await freePort();
  project = await writeProject({
    // A short health.stallAfter: the held-back ledger shows as stalled soon.
    'projd.yaml': `projections:\n  batchSize: 10\nmetrics:\n  host: 127.0.0.1\n  port: ${port}\nhealth:\n  stallAfter: 500ms\n`,
    'projections/ledger.ts': await ledgerProjectionSource(),
    'projections/idle.ts': IDLE_PROJECTION,
  });
});

afterAll(async () => {
  await project?.cleanup();
  await server?.stop();
});

/** The value of one series in Prometheus text, or undefined when the series is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function scrape(path: string): Promise<{ status: number; text: string; type: string | null }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, text: await response.text(), type: response.headers.get('content-type') };
}

describe('projd run, HTTP', () => {
  it('serves /readyz 503 until caught up, then 200, /healthz, and /metrics with every series', async () => {
    // Committed events behind an older open transaction: the daemon cannot catch up until it ends.
    const holder: pg.PoolClient = await server.pool.connect();
    let committed = false;
    try {
      await holder.query('begin');
      await holder.query('select pg_current_xact_id()');
      await appendLedgerEvents(server.pool, { count: EVENTS, streams: 5 });

      const daemon = startDaemon(['run'], { cwd: project.dir, env: { DATABASE_URL: server.url } });
      try {
        const listening = await daemon.waitForLog('http.listening', 30_000);
        expect(listening).toMatchObject({ host: '127.0.0.1', port });

        // Both loops run, and neither has caught up: everything committed waits behind the holder.
        expect(await scrape('/healthz')).toMatchObject({ status: 200, text: 'ok\n' });
        expect(await scrape('/livez')).toMatchObject({ status: 200 });
        const notReady = await scrape('/readyz');
        expect(notReady.status).toBe(503);
        expect(notReady.text).toMatch(/^not caught up yet: (ledger, idle|idle, ledger)\n$/);

        const held = await waitFor(
          async () => {
            const { text } = await scrape('/metrics');
            return sample(text, 'projd_projection_state{projection="ledger",state="stalled"}') === 1 && text;
          },
          { timeoutMs: 15_000, message: 'ledger reported stalled in /metrics' },
        );
        expect(sample(held, 'projd_projection_lag_events{projection="ledger"}')).toBeGreaterThanOrEqual(1);
        expect(sample(held, 'projd_oldest_open_transaction_age_seconds')).toBeGreaterThan(0);
        expect(sample(held, 'projd_events_applied_total{projection="ledger"}')).toBe(0);
        expect(sample(held, 'projd_events_head_position')).toBe(EVENTS);
        for (const series of [
          'projd_projection_position',
          'projd_projection_lag_events',
          'projd_projection_lag_seconds',
          'projd_projection_parked_events',
          'projd_events_applied_total',
          'projd_events_failed_total',
          'projd_batch_duration_seconds_count',
        ]) {
          expect(sample(held, `${series}{projection="idle"}`), series).toBe(0);
        }
        expect((await scrape('/readyz')).status).toBe(503);

        await holder.query('commit');
        committed = true;
        await waitFor(async () => (await scrape('/readyz')).status === 200, {
          timeoutMs: 15_000,
          message: '/readyz 200 once both projections caught up',
        });

        // Gauges are read at most once a second: wait for a read taken after the catch-up.
        const metrics = await waitFor(
          async () => {
            const { text } = await scrape('/metrics');
            return sample(text, 'projd_projection_state{projection="ledger",state="live"}') === 1 && text;
          },
          { timeoutMs: 10_000, message: 'ledger reported live in /metrics' },
        );
        const ledger = '{projection="ledger"}';
        expect(sample(metrics, `projd_projection_position${ledger}`)).toBe(EVENTS);
        expect(sample(metrics, `projd_events_applied_total${ledger}`)).toBe(EVENTS);
        expect(sample(metrics, `projd_events_failed_total${ledger}`)).toBe(0);
        expect(sample(metrics, `projd_projection_lag_events${ledger}`)).toBe(0);
        expect(sample(metrics, `projd_projection_lag_seconds${ledger}`)).toBe(0);
        expect(sample(metrics, `projd_projection_parked_events${ledger}`)).toBe(0);
        // batchSize 10: at least three batches, each in the histogram.
        expect(sample(metrics, `projd_batch_duration_seconds_count${ledger}`)).toBeGreaterThanOrEqual(3);
        expect(sample(metrics, `projd_batch_duration_seconds_bucket{le="60",projection="ledger"}`)).toBe(
          sample(metrics, `projd_batch_duration_seconds_count${ledger}`),
        );
        for (const state of ['catching_up', 'stalled', 'failed', 'stopped']) {
          expect(sample(metrics, `projd_projection_state{projection="ledger",state="${state}"}`), state).toBe(0);
        }
        expect(sample(metrics, 'projd_events_head_position')).toBe(EVENTS);
        expect(sample(metrics, 'projd_oldest_open_transaction_age_seconds')).toBe(0);
        expect(sample(metrics, 'projd_events_applied_total{projection="idle"}')).toBe(0);
        expect(sample(metrics, 'projd_projection_lag_events{projection="idle"}')).toBe(0);
        expect(sample(metrics, 'projd_projection_state{projection="idle",state="live"}')).toBe(1);
        expect(metrics).toContain('# TYPE projd_batch_duration_seconds histogram');
        expect(metrics).toContain('# TYPE projd_events_applied_total counter');
        expect(metrics).toMatch(/^process_cpu_user_seconds_total \d/m);

        expect((await scrape('/healthz')).status).toBe(200);
        expect((await scrape('/nothing-here')).status).toBe(404);
      } finally {
        expect(await daemon.stop()).toBe(0);
      }
      // Stopped first on shutdown: nothing listens any more.
      await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    } finally {
      if (!committed) await holder.query('rollback').catch(() => undefined);
      holder.release();
    }
  });

  it('exits 2 with one line naming the keys when the port is taken, having started no projection', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(port, '127.0.0.1', resolve));
    try {
      const result = await runCli(['run'], { cwd: project.dir, env: { DATABASE_URL: server.url } });
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(
        `projd: cannot serve metrics on 127.0.0.1:${port} (metrics.host, metrics.port; port 0 disables it): listen EADDRINUSE: address already in use 127.0.0.1:${port}\n`,
      );
      // The port is checked before any runner starts: no projection changed state or ran a batch.
      const logged = result.stdout.split('\n').filter(Boolean).map((line) => (JSON.parse(line) as { msg: string }).msg);
      expect(logged.filter((msg) => /^(projection|batch|event)\./.test(msg))).toEqual([]);
      expect(logged).not.toContain('daemon.started');
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});
