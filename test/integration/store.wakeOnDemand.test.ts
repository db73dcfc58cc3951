import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/loadConfig.js';
import { silentLogger } from '../../src/log.js';
import { defineProjection } from '../../src/projection/defineProjection.js';
import { WAKE_LOCK_KEY } from '../../src/store/names.js';
import { armWakeup } from '../../src/store/wakeup.js';
import { startIsolatedPostgres, type IsolatedPostgres } from '../helpers/database.js';
import { waitFor } from '../helpers/waitFor.js';

// Writers notify only when a daemon waits for them (migration 0013). These tests hold
// transactions open, which holds back the xmin horizon of the whole server: a server of their own.
let server: IsolatedPostgres;

beforeAll(async () => {
  server = await startIsolatedPostgres();
});

afterAll(async () => {
  await server?.stop();
});

const appendSql = `insert into projd.events (stream_id, stream_version, type, data) values ($1, $2, 't', '{}')`;
let nextStream = 0;
const append = (db: pg.ClientBase | pg.Pool) => db.query(appendSql, [`s-${(nextStream += 1)}`, 1]);

async function connect(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: server.url });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/**
 * A listener on `projd_events` that counts notifications. `settle()` sends a marker notification
 * from the writers' session and waits for it: notifications arrive in commit order, so every
 * notification of an earlier commit has arrived by then.
 */
async function listen(writer: pg.ClientBase) {
  const listener = await connect();
  let count = 0;
  let marked: (() => void) | undefined;
  listener.on('notification', (message) => {
    if (message.channel === 'projd_events') count += 1;
    if (message.channel === 'test_marker') marked?.();
  });
  await listener.query('listen projd_events; listen test_marker');
  return {
    async settle(): Promise<number> {
      const arrived = new Promise<void>((resolve) => (marked = resolve));
      await writer.query(`notify test_marker`);
      await arrived;
      return count;
    },
    end: () => listener.end(),
  };
}

/**
 * A daemon (not started) whose projection `name` records each event's position in a table of
 * that name, polling once an hour: an event must reach it through the wake-up, or not at all
 * within a test. `applied(position)` waits for that position's row, 10 s at most.
 */
async function appliedDaemon(name: string) {
  const projection = defineProjection({
    name,
    version: 1,
    setup: `create table if not exists ${name} (position bigint primary key)`,
    handlers: {
      t: async (event, db) => {
        await db.query(`insert into ${name} (position) values ($1)`, [event.position]);
      },
    },
  });
  const config = await loadConfig({ env: { DATABASE_URL: server.url }, cwd: process.cwd() });
  config.projections.pollInterval = 60 * 60_000;
  config.metrics.port = 0;
  return {
    app: createApp(config, { projections: [projection], logger: silentLogger() }),
    applied: (position: string) =>
      waitFor(async () => (await server.pool.query(`select 1 from ${name} where position = $1`, [position])).rowCount === 1, {
        timeoutMs: 10_000,
        message: 'the silent writer’s event applied',
      }),
  };
}

describe('the writers’ wake-up', () => {
  it('is sent by the first writer after a daemon armed it, and by no writer until it arms again', async () => {
    const writer = await connect();
    const listener = await listen(writer);
    try {
      await append(writer); // armed since the migration, or by whoever ran before: this one disarms it
      const before = await listener.settle();
      await append(writer);
      await append(writer);
      expect(await listener.settle()).toBe(before); // silent: no daemon armed it since

      expect(await armWakeup(server.pool)).toBe(true);
      await append(writer);
      expect(await listener.settle()).toBe(before + 1);
      await append(writer);
      await writer.query('begin');
      await append(writer);
      await append(writer);
      await writer.query('commit');
      expect(await listener.settle()).toBe(before + 1);

      // Armed twice before a write: still one notification.
      await armWakeup(server.pool);
      await armWakeup(server.pool);
      await append(writer);
      await append(writer);
      expect(await listener.settle()).toBe(before + 2);
    } finally {
      await listener.end();
      await writer.end();
    }
  });

  it('has the next writer notify when the one that notified is still open 50 ms later, or rolled back at once', async () => {
    const [first, second] = [await connect(), await connect()];
    const listener = await listen(second);
    try {
      await append(second);
      const before = await listener.settle();
      await armWakeup(server.pool);
      await first.query('begin');
      await append(first); // it notifies, at its commit: not yet
      await append(second); // within 50 ms of it: silent
      expect(await listener.settle()).toBe(before);
      // Past 50 ms, by the server's clock, with the first still open: the next writer notifies.
      await server.pool.query('select pg_sleep(0.06)');
      await append(second);
      expect(await listener.settle()).toBe(before + 1);
      await first.query('commit');
      expect(await listener.settle()).toBe(before + 2);
      await append(second); // the last one that notified has committed: silent
      expect(await listener.settle()).toBe(before + 2);

      // One that notified and rolled back woke no one: the next writer notifies, at once.
      await armWakeup(server.pool);
      await first.query('begin');
      await append(first);
      await first.query('rollback');
      await append(second);
      expect(await listener.settle()).toBe(before + 3);
    } finally {
      await listener.end();
      await first.end();
      await second.end();
    }
  });

  it('takes a notifier recorded by another cluster (a restored store) as owed, not as an error', async () => {
    const writer = await connect();
    const listener = await listen(writer);
    try {
      await append(writer);
      const before = await listener.settle();
      // What a dump restored into a younger cluster carries: a transaction id this one has not reached.
      await writer.query(
        `select setval('projd.wake_firer', pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 1000000),
                setval('projd.wake_fired_at', 1)`,
      );
      await append(writer);
      expect(await listener.settle()).toBe(before + 1);
      await append(writer); // it notified and committed here: owed no more
      expect(await listener.settle()).toBe(before + 1);
    } finally {
      await listener.end();
      await writer.end();
    }
  });

  it('tells a daemon arming it that a writer which inserted before is still in flight', async () => {
    const writer = await connect();
    try {
      await append(writer);
      await writer.query('begin');
      await append(writer); // silent, and not committed
      expect(await armWakeup(server.pool)).toBe(false);
      expect(await armWakeup(server.pool)).toBe(false); // as long as it is open
      await writer.query('commit');
      expect(await armWakeup(server.pool)).toBe(true);
      // An aborted writer is no longer in flight either.
      await writer.query('begin');
      await append(writer);
      expect(await armWakeup(server.pool)).toBe(false);
      await writer.query('rollback');
      expect(await armWakeup(server.pool)).toBe(true);
    } finally {
      await writer.end();
    }
  });

  // The migration writes the key as a literal: SQL cannot compute it as the code does.
  it('uses the lock key the code names', async () => {
    const migration = await readFile(new URL('../../migrations/0013_wake_on_demand.sql', import.meta.url), 'utf8');
    const keys = new Set(migration.match(/\b\d{15,}\b/g));
    expect([...keys]).toEqual([WAKE_LOCK_KEY]);
  });

  it('has a daemon look again when the writer that took its wake-up never commits, with no writer after it', async () => {
    const daemon = await appliedDaemon('wake_unheard');
    const [firer, silent] = [await connect(), await connect()];
    try {
      await daemon.app.start();
      await daemon.app.caughtUp(); // idle, the wake-up armed
      await firer.query('begin');
      await append(firer); // takes the wake-up: it notifies at its commit
      const { rows } = await silent.query<{ position: string }>(`${appendSql} returning position`, ['unheard', 1]); // within 50 ms: silent
      await firer.query('rollback'); // its notification with it
      await daemon.applied(rows[0]!.position);
    } finally {
      await daemon.app.stop();
      await firer.end();
      await silent.end();
    }
  });

  it('lets a daemon apply the event of a writer that inserted before it armed, soon after that writer commits', async () => {
    const daemon = await appliedDaemon('wake_applied');
    const writer = await connect();
    try {
      await append(writer); // disarms the wake-up: the next insert is silent
      await writer.query('begin');
      const { rows } = await writer.query<{ position: string }>(`${appendSql} returning position`, ['late', 1]);
      await daemon.app.start();
      await daemon.app.caughtUp(); // it looked, armed the wake-up, and found the silent writer in flight
      await writer.query('commit');
      await daemon.applied(rows[0]!.position);
    } finally {
      await daemon.app.stop();
      await writer.end();
    }
  });
});
