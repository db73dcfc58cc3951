import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { defineProjection } from '../../src/projection/defineProjection.js';
import type { ProjdEvent, ProjectionDb } from '../../src/projection/types.js';
import { countApplied, countEvents } from '../../src/store/countEvents.js';
import { START } from '../../src/store/position.js';
import { readProgress } from '../../src/store/progress.js';
import { testProjection, type ProjectionTest } from '../../src/testing/index.js';

// projd/testing against the suite's server (as with DATABASE_URL), and handler patterns through
// the real engine: the SQL filter and the handler lookup must agree on every event.
const databaseUrl = inject('postgresAdminUrl');

async function record(handler: string, event: ProjdEvent, db: ProjectionDb): Promise<void> {
  await db.query('insert into routed (position, type, handler) values ($1, $2, $3)', [event.position, event.type, handler]);
}

const routing = defineProjection({
  name: 'routing',
  version: 1,
  setup: 'create table routed (position bigint primary key, type text not null, handler text not null)',
  handlers: {
    'account.*': (event, db) => record('account.*', event, db),
    'account.credit.*': (event, db) => record('account.credit.*', event, db),
    'account.credited': (event, db) => record('account.credited', event, db),
    // LIKE's metacharacters, which must match only themselves.
    'a_b.*': (event, db) => record('a_b.*', event, db),
    '100%.*': (event, db) => record('100%.*', event, db),
  },
});

async function withTest(projection: Parameters<typeof testProjection>[0], run: (t: ProjectionTest) => Promise<void>) {
  const t = await testProjection(projection, { databaseUrl });
  try {
    await run(t);
  } finally {
    await t.close();
  }
}

describe('handler patterns, through the engine', () => {
  it('delivers exactly the matching events, each to the exact, else the longest prefix handler', async () => {
    await withTest(routing, async (t) => {
      await t.given(
        ['account.credited', 'account.credit.reversed', 'account.opened', 'account', 'accounts.x', 'a_b.c', 'axb.c', '100%.y', '100x.y', 'order.placed'].map(
          (type) => ({ streamId: type, type }),
        ),
      );
      expect(await t.query('select type, handler from routed order by position')).toEqual([
        { type: 'account.credited', handler: 'account.credited' },
        { type: 'account.credit.reversed', handler: 'account.credit.*' },
        { type: 'account.opened', handler: 'account.*' },
        { type: 'a_b.c', handler: 'a_b.*' },
        { type: '100%.y', handler: '100%.*' },
      ]);
    });
  });

  it('a catch-all gets every event, after exact types and prefixes', async () => {
    const all = defineProjection({
      name: 'all_events',
      version: 1,
      setup: 'create table routed (position bigint primary key, type text not null, handler text not null)',
      handlers: {
        '*': (event, db) => record('*', event, db),
        'order.*': (event, db) => record('order.*', event, db),
      },
    });
    await withTest(all, async (t) => {
      await t.given(['x', 'order.placed', 'y.z'].map((type) => ({ streamId: 's', type })));
      expect(await t.query('select type, handler from routed order by position')).toEqual([
        { type: 'x', handler: '*' },
        { type: 'order.placed', handler: 'order.*' },
        { type: 'y.z', handler: '*' },
      ]);
    });
  });

  it('counts lag and replay progress by the same patterns', async () => {
    await withTest(routing, async (t) => {
      await t.given([{ streamId: 'a', type: 'account.opened' }, { streamId: 'b', type: 'order.placed' }]);
      const pool = new pg.Pool({ connectionString: t.databaseUrl, max: 1 });
      try {
        // Appended without running the projection: one of its events, two of others.
        for (const type of ['axb.c', 'account.closed', 'order.shipped']) {
          await pool.query(
            `insert into projd.events (stream_id, stream_version, type, data) values ($1, 1, $2, '{}')`,
            [`late-${type}`, type],
          );
        }
        const [progress] = (await readProgress(pool, [routing])).projections;
        expect(progress!.oldestUnapplied?.position).toBe(4n); // account.closed, not axb.c at 3
        expect(await countEvents(pool, { eventTypes: routing.eventTypes, afterPosition: 0n })).toEqual({
          count: 2,
          lastPosition: 4n,
        });
        expect((await countApplied(pool, 'routing', { eventTypes: routing.eventTypes, after: START }))?.count).toBe(1);
      } finally {
        await pool.end();
      }
    });
  });
});

describe('testProjection', () => {
  const credits = defineProjection<{ 'account.credited': { amount: number } }>({
    name: 'credits',
    version: 1,
    setup: 'create table credits (account_id text primary key, total bigint not null)',
    handlers: {
      'account.credited': async (event, db) => {
        if (event.data.amount < 0) throw new Error(`negative amount ${event.data.amount}`);
        await db.query(
          `insert into credits values ($1, $2) on conflict (account_id) do update set total = credits.total + excluded.total`,
          [event.streamId, event.data.amount],
        );
      },
    },
  });

  it('sets the read model up before any event, and adds each given() to the last', async () => {
    await withTest(credits, async (t) => {
      expect(await t.query('select * from credits')).toEqual([]);
      await t.given([{ streamId: 'a', type: 'account.credited', data: { amount: 1 } }]);
      await t.given([
        { streamId: 'a', type: 'account.credited', data: { amount: 2 } },
        { streamId: 'b', type: 'account.credited', data: { amount: 5 } },
      ]);
      expect(await t.query('select account_id, total from credits order by account_id')).toEqual([
        { account_id: 'a', total: '3' },
        { account_id: 'b', total: '5' },
      ]);
      expect(await t.query('select stream_id, stream_version from projd.events order by position')).toEqual([
        { stream_id: 'a', stream_version: 1 },
        { stream_id: 'a', stream_version: 2 },
        { stream_id: 'b', stream_version: 1 },
      ]);
    });
  });

  it('applies more events than a batch holds, batch after batch', async () => {
    const t = await testProjection(credits, { databaseUrl, batchSize: 2 });
    try {
      await t.given(Array.from({ length: 5 }, (_, i) => ({ streamId: 'a', type: 'account.credited', data: { amount: i } })));
      expect(await t.query('select total from credits')).toEqual([{ total: '10' }]);
    } finally {
      await t.close();
    }
  });

  it('rejects with the failing handler’s error, naming the event', async () => {
    await withTest(credits, async (t) => {
      const failure = await t
        .given([
          { streamId: 'a', type: 'account.credited', data: { amount: 1 } },
          { streamId: 'a', type: 'account.credited', data: { amount: -4 } },
        ])
        .then(() => undefined, (error: Error) => error);
      expect(failure?.message).toBe(
        `projection 'credits': handler for 'account.credited' failed on a version 2 (position 2): negative amount -4`,
      );
      expect((failure?.cause as Error).message).toBe('negative amount -4');
      // The batch rolled back as a whole, as the daemon's would.
      expect(await t.query('select * from credits')).toEqual([]);
    });
  });

  it('names the projection when its setup fails, and leaves no database behind', async () => {
    const broken = defineProjection({ name: 'broken', version: 1, setup: 'create tabel x (id int)', handlers: { x() {} } });
    const before = await databaseNames();
    await expect(testProjection(broken, { databaseUrl })).rejects.toThrow(
      `projection 'broken': syntax error at or near "tabel"`,
    );
    expect(await databaseNames()).toEqual(before);
  });

  it('gives each test a database of its own, and drops it on close', async () => {
    const first = await testProjection(credits, { databaseUrl });
    const second = await testProjection(credits, { databaseUrl });
    const names = [first.databaseUrl, second.databaseUrl].map((url) => new URL(url).pathname.slice(1));
    try {
      expect(names[0]).not.toBe(names[1]);
      await first.given([{ streamId: 'a', type: 'account.credited', data: { amount: 1 } }]);
      expect(await second.query('select * from credits')).toEqual([]);
    } finally {
      await first.close();
      await second.close();
    }
    expect((await databaseNames()).filter((name) => names.includes(name))).toEqual([]);
    await expect(first.query('select 1')).rejects.toThrow(`projection test of 'credits' is closed`);
  });
});

/** The test databases of this process on the server now (other files may make theirs meanwhile). */
async function databaseNames(): Promise<string[]> {
  const admin = new pg.Client({ connectionString: databaseUrl });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ datname: string }>(
      'select datname from pg_database where starts_with(datname, $1) order by datname',
      [`projd_test_${process.pid}_`],
    );
    return rows.map((row) => row.datname);
  } finally {
    await admin.end();
  }
}
