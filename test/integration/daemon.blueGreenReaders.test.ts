import { writeFile } from 'node:fs/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { writeProject, type Project } from '../helpers/project.js';

// A version bump rebuilds 200,000 events while a reader queries the read model every 50 ms:
// it must only ever see the old model whole or the new one whole, never an empty or a
// partial table. The two versions' tables differ (version 2 counts events too), so each
// read says which one it saw.
const EVENTS = 200_000;
const ACCOUNTS = 10_000;
const READ_EVERY_MS = 50;

const db = await createTestDatabase();
let project: Project;

/** Version 1: a balance per account, set-based SQL over the batch. */
const VERSION_1 = `import { defineProjection } from 'projd';
export default defineProjection({
  name: 'balances',
  version: 1,
  eventTypes: ['account.credited'],
  setup: ['create table if not exists balances (account_id text primary key, balance bigint not null)'],
  batch: [\`insert into balances as b (account_id, balance)
           select stream_id, sum((data->>'amount')::bigint) from projd.batch_events() group by stream_id
           on conflict (account_id) do update set balance = b.balance + excluded.balance\`],
});
`;

/** Version 2: a balance and an event count per account, one unnest upsert per batch in JavaScript. */
const VERSION_2 = `import { defineProjection } from 'projd';
export default defineProjection({
  name: 'balances',
  version: 2,
  eventTypes: ['account.credited'],
  setup: ['create table if not exists balances (account_id text primary key, balance bigint not null, events integer not null)'],
  // What an in-place rebuild would run first; a blue/green build starts in a schema of its own.
  reset: ['drop table if exists balances'],
  async handleBatch(events, db) {
    const totals = new Map();
    for (const event of events) {
      const total = totals.get(event.streamId) ?? { balance: 0, events: 0 };
      total.balance += event.data.amount;
      total.events += 1;
      totals.set(event.streamId, total);
    }
    await db.query(
      \`insert into balances as b (account_id, balance, events)
       select * from unnest($1::text[], $2::bigint[], $3::integer[])
       on conflict (account_id) do update set balance = b.balance + excluded.balance, events = b.events + excluded.events\`,
      [[...totals.keys()], [...totals.values()].map((t) => t.balance), [...totals.values()].map((t) => t.events)],
    );
  },
});
`;

/** Rows and an order-blind sum of row hashes: equal for equal tables, whatever their layout. */
const checksumSql = (table: string) =>
  `select count(*)::text || ':' || coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text as checksum from ${table} t`;

beforeAll(async () => {
  project = await writeProject({
    'projd.yaml': 'projections:\n  sqlBatchSize: 20000\n  batchSize: 2000\nmetrics:\n  port: 0\n',
    'projections/balances.ts': VERSION_1,
  });
  await db.pool.query(
    `insert into projd.events (stream_id, stream_version, type, data)
     select 'account-' || (i % $2), i / $2 + 1, 'account.credited', jsonb_build_object('amount', i % 97)
       from generate_series(0, $1 - 1) i`,
    [EVENTS, ACCOUNTS],
  );
});

afterAll(async () => {
  await project?.cleanup();
  await db.drop();
});

describe('a blue/green rebuild of 200,000 events', () => {
  it('shows readers the whole old model or the whole new one, never an empty or partial table', { timeout: 180_000 }, async () => {
    const env = { DATABASE_URL: db.url };
    const old = startDaemon(['run'], { cwd: project.dir, env });
    const reader = new pg.Client({ connectionString: db.url });
    await reader.connect();
    let reading = false;
    try {
      await old.waitForLog((line) => line.msg === 'projection.state' && line.to === 'live', 60_000);
      // Both models, computed from the events by other means: the old one must be in place now.
      await db.pool.query(
        `create table expected_v1 as
           select stream_id as account_id, sum((data->>'amount')::bigint)::bigint as balance
             from projd.events group by stream_id;
         create table expected_v2 as
           select stream_id as account_id, sum((data->>'amount')::bigint)::bigint as balance, count(*)::integer as events
             from projd.events group by stream_id`,
      );
      const checksum = async (table: string) => (await db.pool.query<{ checksum: string }>(checksumSql(table))).rows[0]!.checksum;
      const oldModel = await checksum('expected_v1');
      const newModel = await checksum('expected_v2');
      expect(oldModel).not.toBe(newModel);
      expect(await checksum('balances')).toBe(oldModel);

      // The reader: one query every 50 ms, each read recorded with what it saw.
      const reads: { at: number; seen: string }[] = [];
      reading = true;
      const readerLoop = (async () => {
        while (reading) {
          const seen = await reader.query<{ checksum: string }>(checksumSql('balances')).then(
            (result) => result.rows[0]!.checksum,
            (error: Error) => `error: ${error.message}`,
          );
          reads.push({ at: Date.now(), seen });
          await new Promise((resolve) => setTimeout(resolve, READ_EVERY_MS));
        }
      })();

      await writeFile(project.path('projections/balances.ts'), VERSION_2);
      const next = startDaemon(['run'], { cwd: project.dir, env });
      try {
        // Version 2 is live in the new daemon: the rebuild is over, however it was done.
        await next.waitForLog(
          (line) => line.msg === 'projection.state' && line.projection === 'balances' && line.to === 'live',
          120_000,
        );
        // A few reads after it, then the reader stops.
        const after = reads.length;
        while (reads.length < after + 5) await new Promise((resolve) => setTimeout(resolve, READ_EVERY_MS));
        reading = false;
        await readerLoop;

        const unexpected = reads.filter((read) => read.seen !== oldModel && read.seen !== newModel);
        expect(unexpected).toEqual([]);
        const firstNew = reads.findIndex((read) => read.seen === newModel);
        expect(firstNew).toBeGreaterThan(0);
        expect(reads.slice(firstNew).every((read) => read.seen === newModel)).toBe(true);

        // It was built beside the old version, which the reader saw all through the build.
        const started = await next.waitForLog((line) => String(line.msg).startsWith('build.started'), 1);
        const done = await next.waitForLog((line) => String(line.msg).startsWith('build.done'), 1);
        expect(done).toMatchObject({ projection: 'balances:build', events: EVENTS });
        const swapped = await next.waitForLog((line) => String(line.msg).startsWith('build.swapped'), 1);
        expect(swapped).toMatchObject({ fromVersion: 1, version: 2, moved: ['balances'], replaced: ['balances'] });
        const duringBuild = reads.filter((read) => read.at > Number(started.time) && read.at < Number(done.time));
        expect(duringBuild.length).toBeGreaterThanOrEqual(10);
        expect(new Set(duringBuild.map((read) => read.seen))).toEqual(new Set([oldModel]));

        // The old version's daemon stands aside; the new one runs version 2 live.
        await old.waitForLog((line) => String(line.msg).startsWith('projection.version_behind'), 30_000);
        const schemas = await db.pool.query(`select nspname from pg_namespace where nspname like 'projd\\_build\\_%' or nspname like 'projd\\_old\\_%'`);
        expect(schemas.rows).toEqual([]);
      } finally {
        expect(await next.stop()).toBe(0);
      }
    } finally {
      reading = false;
      await reader.end();
      expect(await old.stop()).toBe(0);
    }
  });
});
