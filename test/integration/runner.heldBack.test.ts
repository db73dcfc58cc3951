import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/loadConfig.js';
import { silentLogger } from '../../src/log.js';
import { defineProjection } from '../../src/projection/defineProjection.js';
import { startIsolatedPostgres } from '../helpers/database.js';
import { waitFor } from '../helpers/waitFor.js';

// The blocker holds a transaction open, which holds back the xmin horizon of the whole
// server, so this file gets a server of its own.
let server: Awaited<ReturnType<typeof startIsolatedPostgres>>;
let pool: pg.Pool;
let app: App;

const counted = defineProjection({
  name: 'counted',
  version: 1,
  setup: 'create table if not exists counted (position bigint primary key)',
  handlers: {
    t: async (event, db) => {
      await db.query('insert into counted (position) values ($1)', [event.position]);
    },
  },
});

beforeAll(async () => {
  server = await startIsolatedPostgres();
  pool = new pg.Pool({ connectionString: server.url, max: 4 });
  pool.on('error', () => {});
  await pool.query('create table scratch (id serial primary key)');
  const config = await loadConfig({ env: { DATABASE_URL: server.url }, cwd: process.cwd() });
  // Far longer than the bound below: the events must be released by the held-back re-check.
  config.projections.pollInterval = 30_000;
  config.metrics.port = 0;
  app = createApp(config, { projections: [counted], logger: silentLogger() });
  await app.start();
  await app.caughtUp();
});

afterAll(async () => {
  await app?.stop();
  await pool?.end();
  await server?.stop();
});

const appliedCount = async () => Number((await pool.query('select count(*) as n from counted')).rows[0].n);

describe('events held back by a transaction that wrote no event', () => {
  it('are applied soon after that transaction ends, though nothing notifies its end', async () => {
    const blocker = await pool.connect();
    try {
      await blocker.query('begin');
      await blocker.query('insert into scratch default values'); // takes a transaction id
      // The events trickle in while the blocker stays open 2 s, as in an application whose
      // ordinary transactions write other tables; each one notifies the runner.
      for (let i = 0; i < 20; i += 1) {
        await pool.query(
          `insert into projd.events (stream_id, stream_version, type, data) values ($1, 1, 't', '{}')`,
          [`held-${i}`],
        );
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await waitFor(() => app.projections()[0]!.state === 'stalled', { message: 'the runner saw the events held back' });
      expect(await appliedCount()).toBe(0);

      await blocker.query('commit');
      const committedAt = Date.now();
      await waitFor(async () => (await appliedCount()) === 20, { timeoutMs: 35_000, message: 'the 20 events applied' });
      // The re-check interval is 100 ms; this bound leaves room for a loaded machine and still
      // fails a back-off that grows toward the 30 s poll interval.
      expect(Date.now() - committedAt).toBeLessThan(1_500);
    } finally {
      blocker.release();
    }
  }, 60_000);
});
