import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyBatch } from '../../src/runner/apply/pickForm.js';
import { createDeadline } from '../../src/runner/deadline.js';
import { createHandlerDb } from '../../src/runner/handlerDb.js';
import { BatchFailure, EventFailure, runBatch, type RunBatchOptions } from '../../src/runner/runBatch.js';
import { appendEvents } from '../../src/store/appendEvents.js';
import { CHECKPOINTS_TABLE } from '../../src/store/names.js';
import { createPool } from '../../src/store/connect.js';
import type { Position } from '../../src/store/position.js';
import { createTestDatabase } from '../helpers/database.js';
import { countRoundTrips } from '../helpers/roundTrips.js';
import { untilBelowGate } from '../helpers/snapshotGate.js';
import { queuedBatchVisits, queuedVisits, visitCounts } from '../helpers/visits.js';

const db = await createTestDatabase();

/** Round trips on the runner's connection (see `countRoundTrips`). */
let roundTrips: ReturnType<typeof countRoundTrips>;
let runnerPool: pg.Pool;

// Queue their statements, as YAML handlers and the example do; an event can ask for one pg
// cannot send. The SQL batch form sends its statement unanswered too.
const queued = queuedVisits('queued_visits', { refusing: true });
const queuedBatch = queuedBatchVisits('queued_batch', { refusing: true });
const counted = visitCounts('counted_visits');

const options = (projection = queued): RunBatchOptions => ({ pool: runnerPool, projection, batchSize: 100, timeoutMs: 30_000, preparedStatements: true });

beforeAll(async () => {
  runnerPool = createPool({ url: db.url, max: 1, connectTimeout: 10_000 });
  roundTrips = countRoundTrips(runnerPool);
  for (const projection of [queued, queuedBatch, counted]) {
    expect(await runBatch(options(projection))).toMatchObject({ kind: 'done', setUp: 'created' });
  }
});

afterAll(async () => {
  await runnerPool?.end();
});

const visit = (streamId: string, data: Record<string, unknown> = {}) => appendEvents(db.pool, streamId, [{ type: 'page.visited', data }]);

async function appliedPositions(): Promise<string[]> {
  const { rows } = await db.pool.query<{ position: string }>('select position::text from queued_visits order by position');
  return rows.map((row) => row.position);
}

async function checkpointPosition(projection = queued.name): Promise<string> {
  const { rows } = await db.pool.query<{ position: string }>(`select position::text from ${CHECKPOINTS_TABLE} where projection = $1`, [projection]);
  return rows[0]!.position;
}

describe('a batch whose handlers queue their statements', () => {
  it('moves its checkpoint and commits in the round trip of its statements: two in all, caught up', async () => {
    const left = await runBatch(options());
    const { positions } = await visit('page-1');
    await untilBelowGate(db.pool);
    roundTrips.reset();
    const result = await runBatch({ ...options(), readFrom: (left as { checkpoint: Position }).checkpoint });
    expect(result).toMatchObject({ kind: 'done', form: 'perEvent', applied: 1 });
    // Begin + lock + checkpoint + read; the handler's statement + move + commit.
    expect(roundTrips.count).toBe(2);
    expect(await appliedPositions()).toContain(String(positions[0]));
  });

  it('commits nothing when pg refused to send one of them: the event that queued it fails', async () => {
    const before = { applied: await appliedPositions(), checkpoint: await checkpointPosition() };
    await visit('page-2');
    const { positions } = await visit('page-3', { refuse: true });
    await untilBelowGate(db.pool);
    const failure = await runBatch(options()).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(EventFailure);
    expect(failure).toMatchObject({ index: 1, event: { position: positions[0] } });
    expect((failure as EventFailure).cause).toMatchObject({ message: expect.stringMatching(/circular/) });
    // The refused statement never reached the server, so it could not abort the transaction:
    // a commit sent behind it would have landed both inserts without the update.
    expect(await appliedPositions()).toEqual(before.applied);
    expect(await checkpointPosition()).toBe(before.checkpoint);
  });
});

describe('a module batch handler that queues its statements', () => {
  it('commits nothing when pg refused to send one of them: the batch fails', async () => {
    const applied = async () => (await db.pool.query('select position from queued_batch')).rowCount;
    const before = { applied: await applied(), checkpoint: await checkpointPosition(queuedBatch.name) };
    await visit('batch-1');
    await visit('batch-2', { refuse: true });
    await untilBelowGate(db.pool);
    const failure = await runBatch(options(queuedBatch)).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BatchFailure);
    expect((failure as BatchFailure).cause).toMatchObject({ message: expect.stringMatching(/circular/) });
    expect(await applied()).toBe(before.applied);
    expect(await checkpointPosition(queuedBatch.name)).toBe(before.checkpoint);
  });
});

describe('a SQL batch handler', () => {
  it("sends its statement, the checkpoint's move and the commit in one round trip: two in all, caught up", async () => {
    const left = await runBatch(options(counted));
    await visit('count-1');
    await untilBelowGate(db.pool);
    roundTrips.reset();
    const result = await runBatch({ ...options(counted), readFrom: (left as { checkpoint: Position }).checkpoint });
    expect(result).toMatchObject({ kind: 'done', form: 'sqlBatch', applied: 1 });
    // Begin + lock + checkpoint + the batch's bounds; the batch SQL + move + commit.
    expect(roundTrips.count).toBe(2);
    const { rows } = await db.pool.query("select visits from counted_visits where stream_id = 'count-1'");
    expect(rows).toEqual([{ visits: 1 }]);
  });
});

describe('applyBatch, as builds beside the live version use it', () => {
  const settled = queuedVisits('settled_visits');

  it('resolves only once every queued statement is answered, and fails the event whose statement failed', async () => {
    // Set up, and past every event before these.
    expect(await runBatch(options(settled))).toMatchObject({ kind: 'done', setUp: 'created' });
    await visit('build-1');
    const { positions } = await visit('build-2');
    await untilBelowGate(db.pool);
    // The second event's insert is already there: its queued statement fails on the server.
    await db.pool.query('insert into settled_visits (position) values ($1)', [positions[0]]);
    const client = await db.pool.connect();
    const deadline = createDeadline(30_000, () => undefined);
    try {
      await client.query('begin');
      const { rows } = await client.query<{ era: number; transaction_id: string; position: string }>(
        `select era, transaction_id::text, position::text from ${CHECKPOINTS_TABLE} where projection = 'settled_visits'`,
      );
      const after = { era: rows[0]!.era, transactionId: BigInt(rows[0]!.transaction_id), position: BigInt(rows[0]!.position) };
      const handlerDb = createHandlerDb(client, { prepare: false });
      const context = { client, projection: settled, part: { index: 0, count: 1 }, after, limit: 100, prepared: false, handlerDb, deadline };
      const failure = await applyBatch('perEvent', context).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(EventFailure);
      expect(failure).toMatchObject({ event: { position: positions[0] } });
      expect(handlerDb.inFlight).toBe(0);
    } finally {
      deadline.clear();
      await client.query('rollback');
      client.release();
    }
  });
});
