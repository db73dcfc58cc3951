import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineProjection } from '../../src/projection/defineProjection.js';
import { EventFailure, runBatch } from '../../src/runner/runBatch.js';
import { appendEvents } from '../../src/store/appendEvents.js';
import { createPool, daemonApplicationName } from '../../src/store/connect.js';
import { readBatch } from '../../src/store/readBatch.js';
import { START } from '../../src/store/position.js';
import { startIsolatedPostgres, type IsolatedPostgres } from '../helpers/database.js';

// The tests hold transactions open, which would hold back the xmin horizon of a shared server.
let server: IsolatedPostgres;

beforeAll(async () => {
  server = await startIsolatedPostgres();
  await server.pool.query('create table scratch (id serial primary key)');
});

afterAll(async () => {
  await server?.stop();
});

/** A connection named as `name`, in a transaction that has taken an id: a batch in flight, or any writer. */
async function openTransaction(applicationName: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: server.url, application_name: applicationName });
  await client.connect();
  await client.query('begin');
  await client.query('insert into scratch default values'); // takes a transaction id
  return client;
}

async function readAll() {
  return readBatch(server.pool, { after: START, eventTypes: ['*'], limit: 1000 });
}

let streams = 0;
/** Appends one event, committed; its position. */
async function appendOne(): Promise<bigint> {
  const { positions } = await appendEvents(server.pool, `stream-${(streams += 1)}`, [{ type: 'thing.done', data: {} }]);
  return positions[0]!;
}

describe('the snapshot gate', () => {
  it("looks past the transactions of projd's batch sessions, which never append events", async () => {
    for (const role of ['daemon', 'replay', 'verify'] as const) {
      const batch = await openTransaction(daemonApplicationName(role));
      try {
        const appended = await appendOne();
        const batchRead = await readAll();
        expect(batchRead.heldBack).toBe(false);
        expect(batchRead.events.map((event) => event.position)).toContain(appended);
      } finally {
        await batch.query('rollback');
        await batch.end();
      }
    }
  });

  it('still holds back the events committed after any other open transaction', async () => {
    const writer = await openTransaction('billing service');
    try {
      const appended = await appendOne();
      const heldRead = await readAll();
      expect(heldRead.heldBack).toBe(true);
      expect(heldRead.events.map((event) => event.position)).not.toContain(appended);
    } finally {
      await writer.query('rollback');
      await writer.end();
    }
    expect((await readAll()).heldBack).toBe(false);
  });
});

describe("a batch session's transaction", () => {
  it('cannot append an event, with a plain insert or through appendEvents', async () => {
    const batch = await openTransaction(daemonApplicationName('daemon'));
    try {
      await expect(
        batch.query(`insert into projd.events (stream_id, stream_version, type, data) values ('x-1', 1, 'thing.done', '{}')`),
      ).rejects.toMatchObject({ code: '55000', message: expect.stringContaining('cannot append events') });
    } finally {
      await batch.end();
    }
    const replay = new pg.Client({ connectionString: server.url, application_name: daemonApplicationName('replay') });
    await replay.connect();
    try {
      await expect(appendEvents(replay, 'x-2', [{ type: 'thing.done', data: {} }])).rejects.toMatchObject({ code: '55000' });
    } finally {
      await replay.end();
    }
  });

  it("fails a handler that appends events as a failure of that event, not of the batch", async () => {
    await appendOne();
    const runnerPool = createPool({ url: server.url, max: 1, connectTimeout: 10_000 });
    const reactor = defineProjection({
      name: 'reactor',
      version: 1,
      handlers: {
        'thing.done': async (event, db) => {
          await db.query(`insert into projd.events (stream_id, stream_version, type, data) values ($1, 1, 'thing.followed', '{}')`, [
            `follow-${event.streamId}`,
          ]);
        },
      },
    });
    try {
      const run = runBatch({ pool: runnerPool, projection: reactor, batchSize: 10, timeoutMs: 30_000, preparedStatements: false });
      await expect(run).rejects.toBeInstanceOf(EventFailure);
      await expect(run).rejects.toMatchObject({ cause: { code: '55000' } });
    } finally {
      await runnerPool.end();
    }
  });
});
