import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/loadConfig.js';
import { silentLogger } from '../../src/log.js';
import { defineProjection } from '../../src/projection/defineProjection.js';
import { lockProjection } from '../../src/store/locks.js';
import { startIsolatedPostgres } from '../helpers/database.js';
import { waitFor } from '../helpers/waitFor.js';

// These tests hold transactions open, which holds back the xmin horizon of the whole
// server, so they get a server of their own.
let server: Awaited<ReturnType<typeof startIsolatedPostgres>>;
let pool: pg.Pool;
let app: App;

const appliedOrder = defineProjection({
  name: 'applied_order',
  version: 1,
  setup: `create table if not exists applied_order (
            seq bigserial primary key, position bigint not null, times_key bigint unique)`,
  handlers: {
    // times_key is unique: a second application of the same event would fail the batch.
    't': async (event, db) => {
      await db.query('insert into applied_order (position, times_key) values ($1, $1)', [event.position]);
    },
  },
});

beforeAll(async () => {
  server = await startIsolatedPostgres();
  pool = new pg.Pool({ connectionString: server.url, max: 8 });
  // pool.end() resolves before its connections have closed; the server stopping right after
  // terminates them, which must not surface as an unhandled error.
  pool.on('error', () => {});
  const config = await loadConfig({ env: { DATABASE_URL: server.url }, cwd: process.cwd() });
  // Minutes: everything in these tests must arrive through notifications and the held-back re-check.
  config.projections.pollInterval = 10 * 60_000;
  config.metrics.port = 0; // no HTTP server: other files' daemons may hold the default port
  config.health.stallAfter = 1; // `stalled` at the first look after events were held back
  app = createApp(config, { projections: [appliedOrder], logger: silentLogger() });
  await app.start();
  await app.caughtUp();
});

afterAll(async () => {
  await app?.stop();
  await pool?.end();
  await server?.stop();
});

const state = () => app.projections()[0]!.state;

async function appliedPositions(): Promise<string[]> {
  const { rows } = await pool.query<{ position: string }>('select position from applied_order order by seq');
  return rows.map((row) => row.position);
}

/**
 * Empties the store and the read model and puts the checkpoint back at the start, in one
 * transaction under the projection's lock, as a replay does: the running daemon's batch in
 * flight ends first, and none of its batches sees half of it.
 */
async function startOver(): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    await lockProjection(client, appliedOrder.name);
    await client.query('truncate applied_order');
    await client.query("update projd.checkpoints set transaction_id = '0', position = 0 where projection = $1", [
      appliedOrder.name,
    ]);
    await client.query('delete from projd.events');
    await client.query('commit');
  } catch (error) {
    await client.query('rollback');
    throw error;
  } finally {
    client.release();
  }
}

async function insert(client: pg.ClientBase | pg.Pool, streamId: string): Promise<string> {
  const { rows } = await client.query<{ position: string }>(
    `insert into projd.events (stream_id, stream_version, type, data) values ($1, 1, 't', '{}') returning position`,
    [streamId],
  );
  return rows[0]!.position;
}

describe('late commits', () => {
  it('delivers an event that commits after a later-positioned one, once, before it', async () => {
    const slow = await pool.connect();
    try {
      await slow.query('begin');
      const lowPosition = await insert(slow, 'late-a'); // takes the lower position, not yet committed
      const highPosition = await insert(pool, 'late-b'); // commits first
      expect(BigInt(lowPosition)).toBeLessThan(BigInt(highPosition));

      // The daemon has looked (notified by late-b's commit) and must hold late-b back:
      // it belongs to a transaction newer than the open one.
      await waitFor(() => state() === 'stalled', { timeoutMs: 10_000, message: 'runner never reported stalled' });
      expect(await appliedPositions()).toEqual([]);

      await slow.query('commit');
      await waitFor(async () => (await appliedPositions()).length === 2, { timeoutMs: 10_000, message: 'both events applied' });
      // Delivery order is the transactions' order: the late one first.
      expect(await appliedPositions()).toEqual([lowPosition, highPosition]);
      await waitFor(() => state() === 'live', { timeoutMs: 10_000, message: 'runner live again' });
    } finally {
      slow.release(true); // a failed test must not hand its open transaction to the next one
    }
  });

  it('delivers the events of a transaction that took its id, waited, then inserted', async () => {
    await startOver();

    const early = await pool.connect();
    try {
      await early.query('begin');
      await early.query('select pg_current_xact_id()'); // an id lower than every insert below
      const others: string[] = [];
      for (let i = 0; i < 5; i += 1) others.push(await insert(pool, `other-${i}`));
      await waitFor(() => state() === 'stalled', { timeoutMs: 10_000, message: 'runner never reported stalled' });
      expect(await appliedPositions()).toEqual([]);

      const latePosition = await insert(early, 'early-tx'); // the highest position, the lowest transaction id
      await early.query('commit');
      await waitFor(async () => (await appliedPositions()).length === 6, { timeoutMs: 10_000, message: 'all six applied' });
      expect(await appliedPositions()).toEqual([latePosition, ...others]);
    } finally {
      early.release(true);
    }
  });

  it('applies every event exactly once under concurrent writers that commit out of order', async () => {
    await startOver();

    // 6 writers, each running at least 15 transactions of 1–3 inserts; each transaction yields
    // to the others between its inserts and before committing, so positions interleave across
    // transactions and commits land out of position order. They go on until the daemon has
    // committed a batch while they write: a daemon that only read after them could skip nothing.
    let appliedWhileWriting = false;
    const writers = Array.from({ length: 6 }, async (_, writer) => {
      const client = await pool.connect();
      try {
        for (let tx = 0; tx < 15 || (!appliedWhileWriting && tx < 500); tx += 1) {
          await client.query('begin');
          const inserts = 1 + ((writer + tx) % 3);
          for (let i = 0; i < inserts; i += 1) {
            await insert(client, `w${writer}-t${tx}-i${i}`);
            await new Promise((resolve) => setImmediate(resolve));
          }
          await client.query('commit');
          appliedWhileWriting ||= (await client.query('select 1 from applied_order limit 1')).rowCount === 1;
        }
      } finally {
        client.release();
      }
    });
    await Promise.all(writers);
    expect(appliedWhileWriting, 'the daemon committed a batch while the writers wrote').toBe(true);

    const { rows } = await pool.query<{ n: string }>('select count(*) as n from projd.events');
    const total = Number(rows[0]!.n);
    await waitFor(async () => (await appliedPositions()).length === total, {
      timeoutMs: 20_000,
      message: `all ${total} events applied`,
    });
    const { rows: expected } = await pool.query<{ position: string }>(
      'select position from projd.events order by transaction_id, position',
    );
    expect(await appliedPositions()).toEqual(expected.map((row) => row.position));
  });
});
