import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { defineProjection } from '../../src/projection/defineProjection.js';
import type { Projection } from '../../src/projection/types.js';
import { runBatch } from '../../src/runner/runBatch.js';
import { appendEvents } from '../../src/store/appendEvents.js';
import { createPool } from '../../src/store/connect.js';
import { createProgressWaiters } from '../../src/wait/progressWaiters.js';
import { createTestDatabase } from '../helpers/database.js';
import { untilBelowGate } from '../helpers/snapshotGate.js';

const db = await createTestDatabase();
const pools: pg.Pool[] = [];

afterAll(async () => {
  await Promise.all(pools.map((pool) => pool.end()));
});

// The three forms that read events, each counting its events in a table of its own.
function forms(suffix: string): Record<string, Projection> {
  return {
    perEvent: defineProjection({
      name: `per_event${suffix}`,
      version: 1,
      setup: 'create table if not exists per_event (n bigint not null)',
      handlers: { 'tick.ticked': async (_event, handlerDb) => void (await handlerDb.query('insert into per_event values (1)')) },
    }),
    sqlBatch: defineProjection({
      name: `sql_batch${suffix}`,
      version: 1,
      setup: 'create table if not exists sql_batch (n bigint not null)',
      eventTypes: ['tick.ticked'],
      batch: 'insert into sql_batch select count(*) from projd.batch_events()',
    }),
    moduleBatch: defineProjection({
      name: `module_batch${suffix}`,
      version: 1,
      setup: 'create table if not exists module_batch (n bigint not null)',
      eventTypes: ['tick.ticked'],
      handleBatch: async (events, handlerDb) => void (await handlerDb.query('insert into module_batch values ($1)', [events.length])),
    }),
  };
}

/** Sets a projection up, appends two events, applies them in one batch on a pool of one connection; returns that connection's prepared statements. */
async function preparedAfterBatch(projection: Projection, preparedStatements: boolean): Promise<string[]> {
  const pool = createPool({ url: db.url, max: 1, connectTimeout: 10_000 });
  pools.push(pool);
  const options = { pool, projection, batchSize: 100, timeoutMs: 30_000, preparedStatements };
  expect(await runBatch(options)).toMatchObject({ kind: 'done', setUp: 'created' });
  await appendEvents(db.pool, `${projection.name}-stream`, [
    { type: 'tick.ticked', data: {} },
    { type: 'tick.ticked', data: {} },
  ]);
  await untilBelowGate(db.pool);
  expect(await runBatch(options)).toMatchObject({ kind: 'done', applied: 2 });
  const { rows } = await pool.query<{ name: string }>("select name from pg_prepared_statements where name like 'projd\\_%' order by name");
  return rows.map((row) => row.name);
}

describe("projd's own statements of a batch", () => {
  // Parsed and planned anew, the read of a small batch cost the server some fifteen times its run.
  it.each([
    ['perEvent', ['projd_move_checkpoint', 'projd_read_batch_whole', 'projd_select_checkpoint']],
    ['sqlBatch', ['projd_move_checkpoint', 'projd_read_batch_bounds_whole', 'projd_select_checkpoint']],
    ['moduleBatch', ['projd_move_checkpoint', 'projd_read_batch_whole', 'projd_select_checkpoint']],
  ])('run as prepared statements in the %s form with database.preparedStatements on', async (form, expected) => {
    const prepared = await preparedAfterBatch(forms('')[form]!, true);
    // Besides them, only the handlers' own parameterised statements (named after their text).
    expect(prepared.filter((name) => !/^projd_[0-9a-f]{24}$/.test(name))).toEqual(expected);
  });

  it("prepare a SQL batch handler's statement, one at a time, and run a string of several as it is", async () => {
    const single = await preparedAfterBatch(forms('_single').sqlBatch!, true);
    expect(single.filter((name) => /^projd_[0-9a-f]{24}$/.test(name))).toHaveLength(1);

    const several = defineProjection({
      name: 'sql_batch_several',
      version: 1,
      setup: 'create table if not exists sql_batch (n bigint not null)',
      eventTypes: ['tick.ticked'],
      // One string, two statements: the extended protocol takes one, so it goes as a simple query.
      batch: 'insert into sql_batch select count(*) from projd.batch_events(); insert into sql_batch select -count(*) from projd.batch_events()',
    });
    const prepared = await preparedAfterBatch(several, true);
    expect(prepared.filter((name) => /^projd_[0-9a-f]{24}$/.test(name))).toEqual([]);
    const { rows } = await db.pool.query<{ n: string }>('select n::text from sql_batch order by n');
    expect(rows.map((row) => row.n)).toEqual(expect.arrayContaining(['-2', '2']));
  });

  it('run unprepared with it off, as behind a pooler that cannot keep prepared statements', async () => {
    for (const projection of Object.values(forms('_unprepared'))) {
      expect(await preparedAfterBatch(projection, false)).toEqual([]);
    }
  });
});

describe("the daemon's read of where a waited-for event stands", () => {
  it.each([
    [true, ['projd_read_wait_state']],
    [false, []],
  ])('runs prepared when database.preparedStatements is %s', async (prepared, expected) => {
    const pool = createPool({ url: db.url, max: 1, connectTimeout: 10_000 });
    pools.push(pool);
    const waiters = createProgressWaiters({ db: pool, missingProjection: 'wait', prepared });
    try {
      const [position] = (await appendEvents(db.pool, `waited-${prepared}`, [{ type: 'tick.ticked', data: {} }])).positions;
      // Nobody applies it: the wait reads where it stands, then times out.
      const outcome = await waiters.wait({ projections: ['nobody_runs_this'], position: position!, timeoutMs: 50 });
      expect(outcome.kind).toBe('timed_out');
    } finally {
      waiters.close();
    }
    const { rows } = await pool.query<{ name: string }>("select name from pg_prepared_statements where name like 'projd\\_%' order by name");
    expect(rows.map((row) => row.name)).toEqual(expected);
  });
});
