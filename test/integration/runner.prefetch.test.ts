import { afterAll, describe, expect, it } from 'vitest';
import { defineProjection } from '../../src/projection/defineProjection.js';
import type { ProjdEvent } from '../../src/projection/types.js';
import { createPrefetch } from '../../src/runner/prefetch.js';
import { runBatch, type RunBatchOptions } from '../../src/runner/runBatch.js';
import { createPool } from '../../src/store/connect.js';
import { CHECKPOINTS_TABLE } from '../../src/store/names.js';
import { START } from '../../src/store/position.js';
import { readBatch } from '../../src/store/readBatch.js';
import { appendAccountEvents } from '../helpers/accounts.js';
import { createTestDatabase } from '../helpers/database.js';
import { untilBelowGate } from '../helpers/snapshotGate.js';

const db = await createTestDatabase();
await appendAccountEvents(db.pool, { count: 1_000, streams: 50 });
await untilBelowGate(db.pool);
const runnerPool = createPool({ url: db.url, max: 4, connectTimeout: 10_000 });

afterAll(async () => {
  await runnerPool.end();
});

const eventTypes = ['account.credited', 'account.debited'];

/** The positions each call of `handleBatch` got, in order. */
const calls: bigint[][] = [];
const counted = defineProjection({
  name: 'counted',
  version: 1,
  eventTypes,
  handleBatch: (events: readonly ProjdEvent[]) => {
    calls.push(events.map((event) => event.position));
  },
});

const prefetch = createPrefetch();
const options = (): RunBatchOptions => ({
  pool: runnerPool,
  projection: counted,
  batchSize: 100,
  timeoutMs: 30_000,
  preparedStatements: false,
  prefetch,
});

async function positions(limit: number, offset = 0): Promise<bigint[]> {
  const batch = await readBatch(db.pool, { after: START, eventTypes, limit: limit + offset });
  return batch.events.slice(offset).map((event) => event.position);
}

describe('the read ahead of a module batch handler', () => {
  it('is the batch a read under the lock returns, taken only where it starts', async () => {
    const first = await readBatch(db.pool, { after: START, eventTypes, limit: 100 });
    const readAhead = createPrefetch();
    readAhead.start(runnerPool, first.scannedTo!, { eventTypes, limit: 100, timeoutMs: 30_000 });
    expect(await readAhead.take(START, 100), 'started elsewhere: not taken').toBeUndefined();
    readAhead.start(runnerPool, first.scannedTo!, { eventTypes, limit: 100, timeoutMs: 30_000 });
    expect(await readAhead.take(first.scannedTo!, 50), 'another batch size: not taken').toBeUndefined();
    readAhead.start(runnerPool, first.scannedTo!, { eventTypes, limit: 100, timeoutMs: 30_000 });
    const taken = await readAhead.take(first.scannedTo!, 100);
    expect(taken?.events.map((event) => event.position)).toEqual(await positions(100, 100));
    await readAhead.settled();
  });

  it('is left by a full batch, and dropped when the checkpoint moved before the next pass', async () => {
    const first = await runBatch(options());
    expect(first).toMatchObject({ kind: 'done', setUp: 'created', applied: 100 });
    // The full batch left a read ahead of the next 100 events, started where it ended.
    const ahead = await prefetch.take(first.kind === 'done' ? first.checkpoint : START, 100);
    expect(ahead?.events.map((event) => event.position)).toEqual(await positions(100, 100));
    expect(await runBatch(options())).toMatchObject({ kind: 'done', applied: 100 });
    // That pass left a read ahead of events 200 to 300. Another writer moves the checkpoint to
    // 400 (as a replay elsewhere could): the next pass must start from there.
    const moved = await readBatch(db.pool, { after: START, eventTypes, limit: 400 });
    await db.pool.query(
      `update ${CHECKPOINTS_TABLE} set era = $1, transaction_id = $2, position = $3 where projection = 'counted'`,
      [moved.scannedTo!.era, String(moved.scannedTo!.transactionId), String(moved.scannedTo!.position)],
    );
    expect(await runBatch(options())).toMatchObject({ kind: 'done', applied: 100 });
    await prefetch.settled();
    expect(calls).toEqual([await positions(100), await positions(100, 100), await positions(100, 400)]);
  });
});
