import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { defineProjection } from '../../src/projection/defineProjection.js';
import { EventFailure, runBatch } from '../../src/runner/runBatch.js';
import { createScratchBuild } from '../../src/runner/scratchBuild.js';
import { appendEvents } from '../../src/store/appendEvents.js';
import { createPool, daemonApplicationName } from '../../src/store/connect.js';
import { START } from '../../src/store/position.js';
import { readProgress } from '../../src/store/progress.js';
import { createTestDatabase } from '../helpers/database.js';
import { waitFor } from '../helpers/waitFor.js';

const db = await createTestDatabase();
const pools: pg.Pool[] = [];

afterAll(async () => {
  await Promise.all(pools.map((pool) => pool.end()));
});

function pool(max = 2): pg.Pool {
  const created = createPool({ url: db.url, max, connectTimeout: 10_000 });
  pools.push(created);
  return created;
}

const batchOptions = { batchSize: 100, timeoutMs: 60_000, preparedStatements: true };

/**
 * A projection whose handler, given an event of `type`, writes a row (so its transaction has an
 * id) and then holds its batch open until `release()`; `wrote` resolves once the row is written.
 */
function heldOpenProjection(name: string, type: string) {
  let handlerWrote!: () => void;
  const wrote = new Promise<void>((resolve) => (handlerWrote = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const projection = defineProjection({
    name,
    version: 1,
    setup: `create table if not exists ${name} (n int)`,
    handlers: {
      [type]: async (_event, handlerDb) => {
        await handlerDb.query(`insert into ${name} values (1)`);
        handlerWrote();
        await released;
      },
    },
  });
  return { projection, wrote, release };
}

/**
 * `heldOpenProjection`, run by the runner: `start()` sets it up, appends one event of `type` and
 * starts running batches until one has applied it (`applied`).
 */
function heldOpenBatch(name: string, type: string) {
  const held = heldOpenProjection(name, type);
  const { projection } = held;
  const batchPool = pool();
  return {
    ...held,
    async start(): Promise<{ applied: Promise<unknown> }> {
      expect(await runBatch({ ...batchOptions, pool: batchPool, projection })).toMatchObject({ kind: 'done' });
      await appendEvents(db.pool, `${name}-stream`, [{ type, data: {} }]);
      // Until the event is below the gate of a store other test files also write to.
      const applied = waitFor(
        async () => {
          const result = await runBatch({ ...batchOptions, pool: batchPool, projection });
          return result.kind === 'done' && result.applied === 1;
        },
        { timeoutMs: 30_000, message: `${name}'s batch to apply its event` },
      );
      return { applied };
    },
  };
}

describe("a projection's batch", () => {
  it("does not hold back another projection's events while it is open with a transaction id", async () => {
    // Its handler writes (so its transaction has an id) and then holds the batch open.
    const slow = heldOpenBatch('mark_slow', 'slow.started');
    const counted: string[] = [];
    const fast = defineProjection({
      name: 'mark_fast',
      version: 1,
      handlers: { 'fast.ticked': async (event) => void counted.push(event.streamId) },
    });
    const fastPool = pool();
    expect(await runBatch({ ...batchOptions, pool: fastPool, projection: fast })).toMatchObject({ kind: 'done' });
    const slowBatch = await slow.start();
    try {
      await slow.wrote;
      // Appended after the slow batch took its transaction id: an unmarked transaction that old
      // would hold these back until it ended.
      await appendEvents(db.pool, 'mark-fast', [
        { type: 'fast.ticked', data: {} },
        { type: 'fast.ticked', data: {} },
      ]);
      await waitFor(
        async () => {
          await runBatch({ ...batchOptions, pool: fastPool, projection: fast });
          return counted.length === 2;
        },
        { timeoutMs: 20_000, message: 'the fast projection to apply both events while the slow batch is open' },
      );
      const { rows } = await db.pool.query<{ n: string }>('select count(*) as n from mark_slow');
      expect(rows[0]!.n, 'the slow batch had not committed yet').toBe('0');
    } finally {
      slow.release();
      await slowBatch.applied;
    }
    expect((await db.pool.query('select count(*)::int as n from mark_slow')).rows[0].n).toBe(1);
  });

  it('cannot append events: the handler fails, and the batch rolls back with the checkpoint where it was', async () => {
    const appending = defineProjection({
      name: 'mark_appending',
      version: 1,
      setup: 'create table if not exists mark_appending (n int)',
      handlers: {
        'appending.asked': async (_event, handlerDb) => {
          await handlerDb.query('insert into mark_appending values (1)');
          await handlerDb.query(
            "insert into projd.events (stream_id, stream_version, type, data) values ('mark-appended', 1, 'appended.by_handler', '{}')",
          );
        },
      },
    });
    const appendingPool = pool();
    const options = { ...batchOptions, pool: appendingPool, projection: appending };
    expect(await runBatch(options)).toMatchObject({ kind: 'done' });
    const before = await checkpointOf('mark_appending');
    await appendEvents(db.pool, 'mark-appending', [{ type: 'appending.asked', data: {} }]);

    const failure = await waitFor(
      async () => runBatch(options).then(() => undefined, (error: unknown) => error),
      { timeoutMs: 30_000, message: 'the batch to reach the event' },
    );
    expect(failure).toBeInstanceOf(EventFailure);
    const cause = (failure as EventFailure).cause as { code?: string; message: string };
    expect(cause.code).toBe('PJ002');
    expect(cause.message).toMatch(/a projection's batch cannot append events/);
    const appended = await db.pool.query("select from projd.events where stream_id = 'mark-appended'");
    expect(appended.rowCount).toBe(0);
    expect((await db.pool.query('select count(*)::int as n from mark_appending')).rows[0].n).toBe(0);
    expect(await checkpointOf('mark_appending')).toEqual(before);
  });

  it('marks its own transaction only: the connection goes back to its name when the batch ends', async () => {
    const single = pool(1);
    const projection = defineProjection({ name: 'mark_name', version: 1, handlers: { 'name.seen': async () => {} } });
    await appendEvents(db.pool, 'mark-name', [{ type: 'name.seen', data: {} }]);
    await waitFor(
      async () => {
        const result = await runBatch({ ...batchOptions, pool: single, projection });
        return result.kind === 'done' && result.applied === 1;
      },
      { timeoutMs: 30_000, message: 'the batch to apply its event' },
    );
    const { rows } = await single.query<{ name: string }>("select current_setting('application_name') as name");
    expect(rows[0]!.name).toBe(daemonApplicationName());
  });

  it("is not named by status as the transaction that holds events back, though it is older than the one that does", async () => {
    const holding = heldOpenBatch('mark_status', 'status.held');
    const batch = await holding.start();
    try {
      await holding.wrote;
      const { rows } = await db.pool.query<{ pid: number }>(
        'select pid from pg_stat_activity where application_name = $1 and backend_xid is not null',
        [daemonApplicationName('batch')],
      );
      const batchPid = rows[0]?.pid;
      expect(batchPid).toBeTypeOf('number');
      // A younger transaction that is not a batch holds back an event appended after it.
      const younger = await db.pool.connect();
      try {
        await younger.query('begin');
        await younger.query('select pg_current_xact_id()');
        await appendEvents(db.pool, 'mark-status-after', [{ type: 'status.after', data: {} }]);
        const progress = await readProgress(db.pool, [holding.projection]);
        expect(progress.heldBack).toBe(true);
        expect(progress.heldBackBy?.pid).not.toBe(batchPid);
      } finally {
        await younger.query('rollback');
        younger.release();
      }
    } finally {
      holding.release();
      await batch.applied;
    }
  });
});

describe("a scratch build's batch (projd verify)", () => {
  it('is marked as a batch while it runs, so that it holds no projection back either', async () => {
    const { projection, wrote, release } = heldOpenProjection('mark_scratch', 'scratch.seen');
    await appendEvents(db.pool, 'mark-scratch', [{ type: 'scratch.seen', data: {} }]);
    const { rows: [head] } = await db.pool.query<{ era: number; transaction_id: string; position: string }>(
      "select era, transaction_id::text, position::text from projd.events where stream_id = 'mark-scratch'",
    );
    const build = createScratchBuild({ pool: pool(), projection, schema: 'mark_scratch_build', batchSize: 100, timeoutMs: 60_000 });
    await build.setUp();
    const through = { era: head!.era, transactionId: BigInt(head!.transaction_id), position: BigInt(head!.position) };
    expect(through.position > START.position).toBe(true);
    const built = waitFor(async () => (await build.buildTo([through])) === 1, {
      timeoutMs: 30_000,
      message: 'the scratch build to apply its event',
    });
    try {
      await wrote;
      const { rows } = await db.pool.query<{ marked: boolean }>(
        `select exists (select from pg_stat_activity where application_name = $1 and backend_xid is not null
                           and query like '%mark_scratch%') as marked`,
        [daemonApplicationName('batch')],
      );
      expect(rows[0]!.marked).toBe(true);
    } finally {
      release();
      await built;
      await build.drop();
    }
  });
});

async function checkpointOf(projection: string): Promise<unknown> {
  const { rows } = await db.pool.query(
    'select era, transaction_id::text, position::text from projd.checkpoints where projection = $1',
    [projection],
  );
  return rows[0];
}
