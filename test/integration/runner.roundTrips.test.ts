import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineProjection } from '../../src/projection/defineProjection.js';
import { runBatch, type RunBatchOptions } from '../../src/runner/runBatch.js';
import { appendEvents } from '../../src/store/appendEvents.js';
import { CHECKPOINTS_TABLE } from '../../src/store/names.js';
import { createPool } from '../../src/store/connect.js';
import { createTestDatabase } from '../helpers/database.js';
import { untilBelowGate } from '../helpers/snapshotGate.js';

const db = await createTestDatabase();

/**
 * Round trips on the runner's pipelined connections: a statement sent while none of its
 * connection's is awaiting an answer starts one; a statement sent while one is rides along.
 */
let roundTrips = 0;
let runnerPool: pg.Pool;

/** When set, runs inside the handler, before its own statement: a writer that ignores the lock. */
let meddle: (() => Promise<void>) | undefined;

const visits = defineProjection({
  name: 'visits',
  version: 1,
  setup: 'create table if not exists visits (position bigint primary key)',
  handlers: {
    'page.visited': async (event, handlerDb) => {
      await meddle?.();
      await handlerDb.query('insert into visits (position) values ($1)', [event.position]);
    },
  },
});

const options = (): RunBatchOptions => ({
  pool: runnerPool,
  projection: visits,
  batchSize: 100,
  timeoutMs: 30_000,
  preparedStatements: false,
});

beforeAll(async () => {
  runnerPool = createPool({ url: db.url, max: 1, connectTimeout: 10_000 });
  runnerPool.on('connect', (client) => {
    let pending = 0;
    const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
    (client as unknown as { query: (...args: unknown[]) => Promise<unknown> }).query = (...args) => {
      if (pending === 0) roundTrips += 1;
      pending += 1;
      const answered = query(...args);
      void answered.then(
        () => (pending -= 1),
        () => (pending -= 1),
      );
      return answered;
    };
  });
  expect(await runBatch(options())).toMatchObject({ kind: 'done', setUp: 'created' });
});

afterAll(async () => {
  await runnerPool?.end();
});

async function visitedPositions(): Promise<string[]> {
  const { rows } = await db.pool.query<{ position: string }>('select position::text from visits order by position');
  return rows.map((row) => row.position);
}

describe('a batch on a pipelined connection', () => {
  it('begins, locks and reads its checkpoint in one round trip, and moves it and commits in one more', async () => {
    await appendEvents(db.pool, 'page-1', [{ type: 'page.visited', data: {} }]);
    await untilBelowGate(db.pool);
    roundTrips = 0;
    const result = await runBatch(options());
    expect(result).toMatchObject({ kind: 'done', form: 'perEvent', applied: 1 });
    // Begin + lock + checkpoint, the batch's read, the handler's statement, move + commit.
    expect(roundTrips).toBe(4);
  });

  it('rolls back, and reports a conflict, when the checkpoint moved under the batch', async () => {
    const [appended] = (await appendEvents(db.pool, 'page-2', [{ type: 'page.visited', data: {} }])).positions;
    await untilBelowGate(db.pool);
    const before = await visitedPositions();
    meddle = async () => {
      meddle = undefined;
      await db.pool.query(`update ${CHECKPOINTS_TABLE} set position = position + 1000000 where projection = 'visits'`);
    };
    const result = await runBatch(options());
    expect(result).toMatchObject({ kind: 'conflict' });
    // The handler's insert was sent before the commit, in the same transaction: it rolled back.
    expect(await visitedPositions()).toEqual(before);
    expect(before).not.toContain(String(appended));
  });
});
