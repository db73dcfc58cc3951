import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineProjection } from '../../src/projection/defineProjection.js';
import { createProgressAnnouncer } from '../../src/runner/progressAnnouncer.js';
import { runBatch, type RunBatchOptions } from '../../src/runner/runBatch.js';
import { appendEvents } from '../../src/store/appendEvents.js';
import { CHECKPOINTS_TABLE, PROGRESS_CHANNEL } from '../../src/store/names.js';
import { parseProgressNotice, type ProgressNotice } from '../../src/store/progressNotice.js';
import { createPool } from '../../src/store/connect.js';
import { START, type Position } from '../../src/store/position.js';
import { createTestDatabase } from '../helpers/database.js';
import { untilBelowGate } from '../helpers/snapshotGate.js';
import { countRoundTrips } from '../helpers/roundTrips.js';
import { waitFor } from '../helpers/waitFor.js';

const db = await createTestDatabase();

/** Round trips on the runner's pipelined connections (see `countRoundTrips`). */
let roundTrips: ReturnType<typeof countRoundTrips>;
let runnerPool: pg.Pool;
/** Listens on the progress channel: what the batches announced, in commit order. */
let progressListener: pg.Client;
const notices: ProgressNotice[] = [];

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

const announcer = createProgressAnnouncer(db.pool, (error) => {
  throw error;
});

const options = (): RunBatchOptions => ({
  pool: runnerPool,
  projection: visits,
  batchSize: 100,
  timeoutMs: 30_000,
  preparedStatements: false,
  announce: announcer.announce,
});

/** Batches that announce nothing: their notices would reach the tests that follow. */
const unannounced = (): RunBatchOptions => ({ ...options(), announce: undefined });

beforeAll(async () => {
  runnerPool = createPool({ url: db.url, max: 1, connectTimeout: 10_000 });
  roundTrips = countRoundTrips(runnerPool);
  expect(await runBatch(options())).toMatchObject({ kind: 'done', setUp: 'created' });
  progressListener = new pg.Client({ connectionString: db.url });
  await progressListener.connect();
  progressListener.on('notification', ({ channel, payload }) => {
    if (channel === PROGRESS_CHANNEL) notices.push(parseProgressNotice(payload ?? '')!);
  });
  await progressListener.query(`listen ${PROGRESS_CHANNEL}`);
});

afterAll(async () => {
  await announcer.settled();
  await runnerPool?.end();
  await progressListener?.end();
});

async function visitedPositions(): Promise<string[]> {
  const { rows } = await db.pool.query<{ position: string }>('select position::text from visits order by position');
  return rows.map((row) => row.position);
}

describe('a batch on a pipelined connection', () => {
  it('begins, locks and reads its checkpoint in one round trip, and moves it and commits in one more', async () => {
    await appendEvents(db.pool, 'page-1', [{ type: 'page.visited', data: {} }]);
    await untilBelowGate(db.pool);
    roundTrips.reset();
    const result = await runBatch(options());
    expect(result).toMatchObject({ kind: 'done', form: 'perEvent', applied: 1 });
    // Begin + lock + checkpoint, the batch's read, the handler's statement, move + commit.
    expect(roundTrips.count).toBe(4);
  });

  it('announces its new checkpoint on projd_progress once it has committed, once', async () => {
    const [appended] = (await appendEvents(db.pool, 'page-3', [{ type: 'page.visited', data: {} }])).positions;
    await untilBelowGate(db.pool);
    const result = await runBatch(options());
    expect(result).toMatchObject({ kind: 'done', applied: 1 });
    const { rows } = await db.pool.query<{ era: number; transaction_id: string; position: string }>(
      `select era, transaction_id::text, position::text from ${CHECKPOINTS_TABLE} where projection = 'visits'`,
    );
    const checkpoint = { era: rows[0]!.era, transactionId: BigInt(rows[0]!.transaction_id), position: BigInt(rows[0]!.position) };
    expect(checkpoint.position).toBe(appended);
    const announced = () => notices.filter((notice) => notice.checkpoint.position === appended);
    await waitFor(() => announced().length > 0, { message: 'the batch to notify projd_progress' });
    expect(announced()).toEqual([{ projection: 'visits', part: 0, parts: 1, checkpoint }]);
  });

  it("sends its read with the opening, in its round trip, when told where it left the checkpoint", async () => {
    const left = await runBatch(unannounced());
    expect(left).toMatchObject({ kind: 'done' });
    const { positions } = await appendEvents(db.pool, 'page-4', [{ type: 'page.visited', data: {} }]);
    await untilBelowGate(db.pool);
    roundTrips.reset();
    const result = await runBatch({ ...unannounced(), readFrom: (left as { checkpoint: Position }).checkpoint });
    expect(result).toMatchObject({ kind: 'done', applied: 1 });
    // Begin + lock + checkpoint + the batch's read, the handler's statement, move + commit.
    expect(roundTrips.count).toBe(3);
    expect(await visitedPositions()).toContain(String(positions[0]));
  });

  it('reads again when the checkpoint is behind where it was told: nothing is applied twice', async () => {
    const before = await visitedPositions();
    const { positions } = await appendEvents(db.pool, 'page-5', [{ type: 'page.visited', data: {} }]);
    await untilBelowGate(db.pool);
    roundTrips.reset();
    // Read from the start, every visit already applied comes back: applied again, each would
    // break the table's primary key.
    const result = await runBatch({ ...unannounced(), readFrom: START });
    expect(result).toMatchObject({ kind: 'done', applied: 1 });
    expect(await visitedPositions()).toEqual([...before, String(positions[0])]);
  });

  it('reads again when the checkpoint is ahead of where it was told: nothing is skipped', async () => {
    const left = await runBatch(unannounced());
    const { era } = (left as { checkpoint: Position }).checkpoint;
    const { positions, transactionId } = await appendEvents(db.pool, 'page-6', [
      { type: 'page.visited', data: {} },
      { type: 'page.visited', data: {} },
    ]);
    await untilBelowGate(db.pool);
    // Told the first of the two is behind it already.
    const result = await runBatch({ ...unannounced(), readFrom: { era, transactionId, position: positions[0]! } });
    expect(result).toMatchObject({ kind: 'done', applied: 2 });
    expect(await visitedPositions()).toEqual(expect.arrayContaining(positions.map(String)));
  });

  it('rolls back, and reports a conflict, when the checkpoint moved under the batch', async () => {
    const [appended] = (await appendEvents(db.pool, 'page-2', [{ type: 'page.visited', data: {} }])).positions;
    await untilBelowGate(db.pool);
    const before = await visitedPositions();
    meddle = async () => {
      meddle = undefined;
      await db.pool.query(`update ${CHECKPOINTS_TABLE} set position = position + 1000000 where projection = 'visits'`);
    };
    const from = notices.length;
    const result = await runBatch(options());
    expect(result).toMatchObject({ kind: 'conflict' });
    // The handler's insert was sent before the commit, in the same transaction: it rolled back.
    expect(await visitedPositions()).toEqual(before);
    expect(before).not.toContain(String(appended));
    // So did its notice: a notification sent after it arrives alone.
    await db.pool.query('select pg_notify($1, $2)', [PROGRESS_CHANNEL, JSON.stringify({ projection: 'marker', part: 0, parts: 1, era: 0, transactionId: '0', position: '0' })]);
    await waitFor(() => notices.length > from, { message: 'the marker notice' });
    expect(notices.slice(from).map((notice) => notice.projection)).toEqual(['marker']);
  });
});
