import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/loadConfig.js';
import { defineProjection } from '../../src/projection/defineProjection.js';
import { loadProjectionFile } from '../../src/projection/loadProjections.js';
import type { Projection, ProjectionDb, ProjdEvent } from '../../src/projection/types.js';
import { readStatusReport } from '../../src/status/readStatusReport.js';
import { lockProjection } from '../../src/store/locks.js';
import { advisoryLockKey } from '../../src/store/names.js';
import { advisoryLockTag } from '../../src/store/progress.js';
import { accountsBatchSql, appendAccountEvents, expectSameReadModel } from '../helpers/accounts.js';
import type { LogLine } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { appendItems } from '../helpers/items.js';
import { writeProject, type Project } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

// The edges of the blue/green rebuild, each projection of its own in one database: what the
// swap moves and what it leaves, when it falls back to rebuilding in place, split projections,
// parked events, and the SQL and YAML forms.

const db = await createTestDatabase();
const projects: Project[] = [];

afterAll(async () => {
  await Promise.all(projects.map((project) => project.cleanup()));
});

const ACCOUNT_TYPES = ['account.credited', 'account.debited'];

interface RunOptions {
  rebuild?: 'blue-green' | 'in-place';
  keepOldTables?: boolean;
  /** The build is expected to park events; otherwise a parked event fails the test at once. */
  buildParks?: boolean;
  /** Runs once the app has started, before waiting for it to catch up. */
  whileRunning?: (logs: LogLine[]) => Promise<void>;
}

/** Runs `projections` in-process until every one is live on its current version; returns the log lines. */
async function runUntilCaughtUp(projections: Projection[], options: RunOptions = {}): Promise<LogLine[]> {
  const config = await loadConfig({ env: { DATABASE_URL: db.url }, cwd: process.cwd() });
  config.metrics.port = 0;
  config.projections.pollInterval = 100;
  config.projections.batchSize = 200;
  config.projections.rebuild = options.rebuild ?? 'blue-green';
  config.projections.keepOldTables = options.keepOldTables ?? false;
  const logs: LogLine[] = [];
  // A build or a swap that fails is retried for ever: the test fails on the first failure, saying why.
  let buildFailed!: (error: Error) => void;
  const failed = new Promise<never>((_, reject) => (buildFailed = reject));
  failed.catch(() => undefined);
  const logger = pino({ level: 'info' }, {
    write: (text: string) => {
      const line = JSON.parse(text) as LogLine;
      logs.push(line);
      if (['build.swap_failed', 'build.failed', 'build.not_ready'].includes(String(line.msg))) {
        buildFailed(new Error(`${line.msg}: ${String(line.err ?? line.reason)}`));
      }
      const ofBuild = String(line.projection).endsWith(':build');
      if (ofBuild && (line.to === 'retrying' || line.to === 'failed' || (line.msg === 'event.parked' && !options.buildParks))) {
        const cause = [...logs].reverse().find((earlier) => earlier.err !== undefined)?.err as { message?: string } | undefined;
        buildFailed(new Error(`the build failed: ${line.msg} ${String(line.to ?? line.position ?? '')}: ${cause?.message}`));
      }
    },
  });
  const app = createApp(config, { projections, logger });
  try {
    await app.start();
    await Promise.race([options.whileRunning?.(logs), failed]);
    await Promise.race([app.caughtUp(), failed]);
  } finally {
    await app.stop();
  }
  return logs;
}

const message = (logs: LogLine[], prefix: string) => logs.filter((line) => String(line.msg).startsWith(prefix));

async function schemasLike(pattern: string): Promise<string[]> {
  const { rows } = await db.pool.query<{ nspname: string }>(
    'select nspname from pg_namespace where nspname like $1 order by nspname',
    [pattern],
  );
  return rows.map((row) => row.nspname);
}

async function checkpoints(projection: string): Promise<Array<{ part: number; parts: number; version: number }>> {
  const { rows } = await db.pool.query<{ part: number; parts: number; version: number }>(
    'select part, parts, version from projd.checkpoints where projection = $1 order by part',
    [projection],
  );
  return rows;
}

async function countAccountEvents(): Promise<number> {
  const { rows } = await db.pool.query<{ n: string }>('select count(*) as n from projd.events where type = any($1)', [
    ACCOUNT_TYPES,
  ]);
  return Number(rows[0]!.n);
}

/** Where each relation, type and routine named `names` lives. */
async function whereAre(names: string[]): Promise<Record<string, string[]>> {
  const { rows } = await db.pool.query<{ name: string; schema: string }>(
    `select c.relname as name, n.nspname as schema from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relname = any($1)
     union all
     select t.typname, n.nspname from pg_type t join pg_namespace n on n.oid = t.typnamespace
      where t.typname = any($1) and t.typtype = 'e'
     union all
     select p.proname, n.nspname from pg_proc p join pg_namespace n on n.oid = p.pronamespace where p.proname = any($1)
     order by 1, 2`,
    [names],
  );
  const found: Record<string, string[]> = {};
  for (const row of rows) (found[row.name] ??= []).push(row.schema);
  return found;
}

/** The tables a view reads, as `schema.table`. */
async function tablesReadBy(view: string): Promise<string[]> {
  const { rows } = await db.pool.query<{ table: string }>(
    `select distinct format('%s.%s', n.nspname, c.relname) as table
       from pg_rewrite r
       join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = r.oid and d.refclassid = 'pg_class'::regclass
       join pg_class c on c.oid = d.refobjid
       join pg_namespace n on n.oid = c.relnamespace
      where r.ev_class = $1::regclass and d.refobjid <> r.ev_class`,
    [view],
  );
  return rows.map((row) => row.table);
}

/** Whether a session waits for the projection lock of `key` (a projection's name, or a build's). */
async function waitsForLock(key: string): Promise<boolean> {
  const { classid, objid } = advisoryLockTag(advisoryLockKey('projection', key));
  const { rows } = await db.pool.query(
    `select 1 from pg_locks
      where locktype = 'advisory' and not granted and classid = $1::oid and objid = $2::oid and objsubid = 1
        and database = (select oid from pg_database where datname = current_database())`,
    [classid, objid],
  );
  return rows.length > 0;
}

describe('a version bump built beside the live version', () => {
  // Version 2 adds an enum value, a column, and doubles in the function what version 1 did not.
  function shapes(version: number): Projection {
    const kinds = version === 1 ? `'credit', 'debit'` : `'credit', 'debit', 'refund'`;
    return defineProjection({
      name: 'shapes',
      version,
      setup: [
        `create type shape_kind as enum (${kinds})`,
        `create table shapes (id bigserial primary key, ref integer generated always as identity, stream_id text not null,
                              kind shape_kind not null, amount bigint not null, built_by integer not null default ${version})`,
        'create index shapes_stream on shapes (stream_id)',
        'create view shape_totals as select stream_id, sum(amount) as total, max(built_by) as built_by from shapes group by stream_id',
        `create function shape_factor() returns integer language sql immutable as 'select ${version}'`,
      ],
      reset: ['drop view shape_totals', 'drop table shapes', 'drop type shape_kind', 'drop function shape_factor()'],
      handlers: Object.fromEntries(
        ACCOUNT_TYPES.map((type) => [
          type,
          async (event: ProjdEvent<{ amount: number }>, db: ProjectionDb) => {
            await db.query('insert into shapes (stream_id, kind, amount) values ($1, $2, $3 * shape_factor())', [
              event.streamId,
              type === 'account.debited' ? 'debit' : 'credit',
              event.data.amount,
            ]);
          },
        ]),
      ),
    });
  }
  const objects = ['shapes', 'shapes_id_seq', 'shapes_ref_seq', 'shapes_stream', 'shapes_pkey', 'shape_totals', 'shape_kind', 'shape_factor'];

  it('moves tables, their sequences and indexes, enum types, views and functions, and drops the old ones', async () => {
    await appendAccountEvents(db.pool, { count: 300, streams: 10 });
    await runUntilCaughtUp([shapes(1)]);
    const events = await countAccountEvents();

    const logs = await runUntilCaughtUp([shapes(2)]);
    expect(message(logs, 'build.started')).toHaveLength(1);
    const [swapped] = message(logs, 'build.swapped');
    expect(swapped).toMatchObject({ fromVersion: 1, version: 2 });
    expect(swapped!.replaced).toEqual(expect.arrayContaining(['shapes', 'shape_totals', 'shape_kind', 'shape_factor']));
    expect(swapped!.keptIn).toBeUndefined();

    // Only the live schema holds them, each once: the build's schema and the old one are gone.
    const everywhere = await whereAre(objects);
    expect(everywhere).toEqual(Object.fromEntries(objects.map((name) => [name, ['public']])));
    expect(await schemasLike('projd\\_%\\_shapes%')).toEqual([]);

    // Version 2's objects: the new enum value, column and function; the view reads the new table.
    const { rows } = await db.pool.query<{ kinds: string; factor: number; built_by: number; total: string; rows: string }>(
      `select enum_range(null::shape_kind)::text as kinds, shape_factor() as factor,
              (select min(built_by) from shape_totals) as built_by,
              (select sum(total)::text from shape_totals) as total,
              (select count(*)::text from shapes) as rows`,
    );
    expect(rows[0]).toMatchObject({ kinds: '{credit,debit,refund}', factor: 2, built_by: 2, rows: String(events) });
    expect(await tablesReadBy('public.shape_totals')).toEqual(['public.shapes']);
    const { rows: amounts } = await db.pool.query<{ twice: string }>(
      `select (2 * sum((data->>'amount')::bigint))::text as twice from projd.events where type = any($1)`,
      [ACCOUNT_TYPES],
    );
    expect(rows[0]!.total).toBe(amounts[0]!.twice);
    // The serial and identity columns' sequences went with their table, and go on after the built rows.
    for (const column of ['id', 'ref']) {
      const { rows: serial } = await db.pool.query<{ sequence: string; next: string; max: string }>(
        `select pg_get_serial_sequence('public.shapes', $1) as sequence,
                nextval(pg_get_serial_sequence('public.shapes', $1))::text as next, (select max(${column})::text from shapes) as max`,
        [column],
      );
      expect(serial[0]!.sequence).toBe(`public.shapes_${column}_seq`);
      expect(BigInt(serial[0]!.next)).toBeGreaterThan(BigInt(serial[0]!.max));
    }
    expect(await checkpoints('shapes')).toEqual([{ part: 0, parts: 1, version: 2 }]);
    expect(await checkpoints('shapes:build')).toEqual([]);
  });

  it('keeps the replaced objects in a schema of their own with keepOldTables', async () => {
    const logs = await runUntilCaughtUp([shapes(3)], { keepOldTables: true });
    const [swapped] = message(logs, 'build.swapped');
    const old = String(swapped!.keptIn);
    expect(old).toMatch(/^projd_old_shapes_v2_[0-9a-f]{6}$/);
    expect(await schemasLike('projd\\_%\\_shapes%')).toEqual([old]);
    expect(message(logs, 'build.old_tables_kept')).toEqual([]); // kept as asked, not for a dependent

    const everywhere = await whereAre(objects);
    expect(everywhere).toEqual(Object.fromEntries(objects.map((name) => [name, [old, 'public'].sort()])));
    // Version 2's objects, together: its view reads its table, its function says 2.
    expect(await tablesReadBy(`${old}.shape_totals`)).toEqual([`${old}.shapes`]);
    expect(await tablesReadBy('public.shape_totals')).toEqual(['public.shapes']);
    const { rows } = await db.pool.query<{ old: number; live: number; old_built_by: number }>(
      `select "${old}".shape_factor() as old, shape_factor() as live,
              (select max(built_by) from "${old}".shape_totals) as old_built_by`,
    );
    expect(rows[0]).toEqual({ old: 2, live: 3, old_built_by: 2 });
    expect(await checkpoints('shapes')).toEqual([{ part: 0, parts: 1, version: 3 }]);
  });
});

describe('a view of the user\'s own over the live table', () => {
  const notes = (version: number) =>
    defineProjection({
      name: 'notes',
      version,
      setup: `create table notes (stream_id text primary key, events integer not null)`,
      reset: 'truncate notes',
      handlers: {
        'account.credited': async (event, db) => {
          await db.query(
            `insert into notes values ($1, ${version}) on conflict (stream_id) do update set events = notes.events + ${version}`,
            [event.streamId],
          );
        },
      },
    });

  it('keeps the replaced table in its schema, with a warning naming the view, which is not dropped', async () => {
    await appendAccountEvents(db.pool, { count: 50, streams: 5 });
    await runUntilCaughtUp([notes(1)]);
    await db.pool.query('create view public.notes_report as select sum(events) as events from notes');
    const before = (await db.pool.query<{ events: string }>('select events::text from notes_report')).rows[0]!.events;

    const logs = await runUntilCaughtUp([notes(2)]);
    const [swapped] = message(logs, 'build.swapped');
    const old = String(swapped!.keptIn);
    expect(old).toMatch(/^projd_old_notes_v1_[0-9a-f]{6}$/);
    const [kept] = message(logs, 'build.old_tables_kept');
    expect(kept).toMatchObject({ level: 40, schema: old, dependents: [expect.stringContaining('notes_report')] });
    expect(kept!.msg).toContain('notes_report');

    // The view is there, reading version 1's table where it went; version 2 is live.
    expect(await tablesReadBy('public.notes_report')).toEqual([`${old}.notes`]);
    expect((await db.pool.query<{ events: string }>('select events::text from notes_report')).rows[0]!.events).toBe(before);
    const { rows } = await db.pool.query<{ events: string }>('select sum(events)::text as events from notes');
    expect(rows[0]!.events).toBe(String(2 * Number(before)));
    await db.pool.query('drop view notes_report');
  });
});

describe('a projection that cannot be built in a schema of its own', () => {
  /**
   * `total` per stream, version times each credit; `schema.setup` names the table's schema in
   * setup, `schema.handlerFrom` in the handler's statement for the events from that position on.
   */
  function totals(name: string, version: number, schema: { setup?: boolean; handlerFrom?: bigint } = {}): Projection {
    const table = (qualified: boolean | undefined) => (qualified ? `public.${name}` : name);
    return defineProjection({
      name,
      version,
      setup: `create table if not exists ${table(schema.setup)} (stream_id text primary key, total bigint not null)`,
      reset: `truncate ${table(schema.setup)}`,
      handlers: {
        'account.credited': async (event: ProjdEvent<{ amount: number }>, db) => {
          await db.query(
            `insert into ${table(schema.handlerFrom !== undefined && event.position >= schema.handlerFrom)} as t values ($1, $2) on conflict (stream_id) do update set total = t.total + excluded.total`,
            [event.streamId, version * event.data.amount],
          );
        },
      },
    });
  }

  async function expectTotals(name: string, version: number): Promise<void> {
    const { rows } = await db.pool.query(
      `with expected as (
         select stream_id, ${version} * sum((data->>'amount')::bigint) as total
           from projd.events where type = 'account.credited' group by stream_id)
       select * from expected e full join ${name} t using (stream_id) where e.total is distinct from t.total`,
    );
    expect(rows).toEqual([]);
  }

  /** What a blue/green build of `name` logs: its start and swap, and its runners' lines. */
  const buildLines = (logs: LogLine[], name: string) =>
    logs.filter((line) => /^build\.(started|swapped|superseded|not_ready)/.test(String(line.msg)) || line.projection === `${name}:build`);

  const rebuiltInPlace = (logs: LogLine[], name: string) =>
    logs.some((line) => line.msg === 'projection.setup' && line.projection === name && line.setUp === 'rebuilt');

  it('rebuilds in place, with a warning, when its setup names a schema', async () => {
    await appendAccountEvents(db.pool, { count: 50, streams: 5 });
    await runUntilCaughtUp([totals('qualified', 1, { setup: true })]);
    const logs = await runUntilCaughtUp([totals('qualified', 2, { setup: true })]);
    const warnings = message(logs, 'projection.rebuild_in_place');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 40, projection: 'qualified' });
    expect(warnings[0]!.msg).toContain("setup names schema 'public' (public.qualified)");
    expect(buildLines(logs, 'qualified')).toEqual([]);
    expect(rebuiltInPlace(logs, 'qualified')).toBe(true);
    expect(await schemasLike('projd\\_%\\_qualified%')).toEqual([]);
    expect(await checkpoints('qualified')).toEqual([{ part: 0, parts: 1, version: 2 }]);
    await expectTotals('qualified', 2);
  });

  it('drops the build and rebuilds in place, with a warning, when a handler sends a statement naming a schema', async () => {
    await runUntilCaughtUp([totals('sends_qualified', 1)]);
    // Only the last credit's statement names the schema: the build has committed batches before it.
    const { rows } = await db.pool.query<{ last: string }>(
      `select max(position)::text as last from projd.events where type = 'account.credited'`,
    );
    const logs = await runUntilCaughtUp([totals('sends_qualified', 2, { handlerFrom: BigInt(rows[0]!.last) })]);
    // The build started, set up its schema, committed batches, and was dropped at the statement naming the schema.
    expect(message(logs, 'build.started')).toHaveLength(1);
    expect(logs.some((line) => line.msg === 'projection.setup' && line.projection === 'sends_qualified:build')).toBe(true);
    expect(message(logs, 'build.swapped')).toEqual([]);
    const warnings = message(logs, 'projection.rebuild_in_place');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toContain("a handler names schema 'public' (public.sends_qualified)");
    expect(await checkpoints('sends_qualified:build')).toEqual([]);
    expect(await schemasLike('projd\\_%\\_sends\\_qualified%')).toEqual([]);
    expect(rebuiltInPlace(logs, 'sends_qualified')).toBe(true);
    expect(await checkpoints('sends_qualified')).toEqual([{ part: 0, parts: 1, version: 2 }]);
    await expectTotals('sends_qualified', 2);
  });

  it('drops the build and rebuilds in place, with a warning, when it reads a table of the user\'s unqualified', async () => {
    await db.pool.query(`create table customer_labels (label text not null); insert into customer_labels values ('gold')`);
    // One reads the user's table in its handler, the other, split in two parts, in a view its setup creates.
    const labelled = (version: number) =>
      defineProjection({
        name: 'labelled',
        version,
        setup: 'create table if not exists labelled (stream_id text primary key, label text not null)',
        reset: 'truncate labelled',
        handlers: {
          'account.credited': async (event, db) => {
            await db.query(
              `insert into labelled select $1, label || ${version} from customer_labels on conflict (stream_id) do nothing`,
              [event.streamId],
            );
          },
        },
      });
    const viewed = (version: number) =>
      defineProjection({
        name: 'viewed',
        version,
        partitions: 2,
        setup: [
          'create table if not exists viewed (stream_id text primary key, events integer not null)',
          `create or replace view viewed_labels as select v.stream_id, v.events * ${version} as events, l.label
             from viewed v cross join customer_labels l`,
        ],
        reset: 'truncate viewed',
        handlers: {
          'account.credited': async (event, db) => {
            await db.query('insert into viewed values ($1, 1) on conflict (stream_id) do update set events = viewed.events + 1', [
              event.streamId,
            ]);
          },
        },
      });
    await runUntilCaughtUp([labelled(1), viewed(1)]);
    const logs = await runUntilCaughtUp([labelled(2), viewed(2)]);

    expect(message(logs, 'build.swapped')).toEqual([]);
    const warnings = message(logs, 'projection.rebuild_in_place');
    expect(warnings.map((line) => [line.projection, line.msg])).toEqual([
      ['labelled', expect.stringContaining('relation "customer_labels" does not exist in its build schema')],
      ['viewed', expect.stringContaining('relation "customer_labels" does not exist in its build schema')],
    ]);
    for (const name of ['labelled', 'viewed']) {
      expect(rebuiltInPlace(logs, name)).toBe(true);
      expect(await checkpoints(`${name}:build`)).toEqual([]);
    }
    expect(await checkpoints('labelled')).toEqual([{ part: 0, parts: 1, version: 2 }]);
    expect(await checkpoints('viewed')).toEqual([0, 1].map((part) => ({ part, parts: 2, version: 2 })));
    expect(await schemasLike('projd\\_%\\_labelled%')).toEqual([]);
    expect(await schemasLike('projd\\_%\\_viewed%')).toEqual([]);
    // Nothing parked: no event was refused by the build, and version 2 is the whole read model.
    const { rows } = await db.pool.query<{ failed: string; labelled: string; labels: string; viewed: string; streams: string }>(
      `select (select count(*)::text from projd.failed_events where projection like 'labelled%' or projection like 'viewed%') as failed,
              (select count(*)::text from labelled) as labelled,
              (select string_agg(distinct label, ',') from labelled) as labels,
              (select count(*)::text from viewed_labels where events > 0) as viewed,
              (select count(distinct stream_id)::text from projd.events where type = 'account.credited') as streams`,
    );
    expect(rows[0]).toEqual({ failed: '0', labelled: rows[0]!.streams, labels: 'gold2', viewed: rows[0]!.streams, streams: rows[0]!.streams });
  });

  it('rebuilds in place, without a build or a warning, with projections.rebuild: in-place', async () => {
    await runUntilCaughtUp([totals('in_place', 1)]);
    const logs = await runUntilCaughtUp([totals('in_place', 2)], { rebuild: 'in-place' });
    expect(buildLines(logs, 'in_place')).toEqual([]);
    expect(message(logs, 'projection.rebuild_in_place')).toEqual([]);
    expect(logs.filter((line) => line.level === 40)).toEqual([]);
    expect(rebuiltInPlace(logs, 'in_place')).toBe(true);
    expect(await schemasLike('projd\\_%\\_in\\_place%')).toEqual([]);
    expect(await checkpoints('in_place')).toEqual([{ part: 0, parts: 1, version: 2 }]);
    await expectTotals('in_place', 2);
  });
});

describe('a split projection', () => {
  /** Records each application of each event; a second one of an event fails on the primary key. */
  function applied(name: string, version: number, partitions: number): Projection {
    const record = async (event: ProjdEvent, db: ProjectionDb) => {
      await db.query(`insert into ${name} (position, stream_id, stream_version) values ($1, $2, $3)`, [
        event.position,
        event.streamId,
        event.streamVersion,
      ]);
    };
    return defineProjection({
      name,
      version,
      partitions,
      setup: `create table if not exists ${name} (position bigint primary key, stream_id text not null,
                                                  stream_version integer not null, seq bigserial not null)`,
      reset: `truncate ${name}`,
      handlers: { 'account.credited': record, 'account.debited': record },
    });
  }

  /** Every account event applied once (the primary key sees to that), and each stream's in version order. */
  async function expectEachEventOnceInStreamOrder(name: string): Promise<void> {
    const { rows } = await db.pool.query<{ applied: string; out_of_order: string }>(`
      select (select count(*) from ${name}) as applied,
             (select count(*) from (
                select stream_version, row_number() over (partition by stream_id order by seq) as nth
                  from ${name}) s
               where stream_version <> nth) as out_of_order`);
    expect(rows[0]).toEqual({ applied: String(await countAccountEvents()), out_of_order: '0' });
  }

  /** The parts the build's runners ran, by their log lines. */
  const buildParts = (logs: LogLine[], name: string) =>
    [...new Set(logs.filter((line) => line.projection === `${name}:build`).map((line) => line.part))].sort();

  it('builds every part beside the live version on a version bump, and swaps them together', async () => {
    await appendAccountEvents(db.pool, { count: 600, streams: 30 });
    await runUntilCaughtUp([applied('split', 1, 3)]);
    await expectEachEventOnceInStreamOrder('split');

    await appendAccountEvents(db.pool, { count: 300, streams: 30 });
    const logs = await runUntilCaughtUp([applied('split', 2, 3)]);
    expect(message(logs, 'build.started')).toHaveLength(1);
    expect(message(logs, 'build.swapped')).toMatchObject([{ fromVersion: 1, version: 2 }]);
    expect(buildParts(logs, 'split')).toEqual(['0/3', '1/3', '2/3']);
    expect(await checkpoints('split')).toEqual([0, 1, 2].map((part) => ({ part, parts: 3, version: 2 })));
    expect(await checkpoints('split:build')).toEqual([]);
    expect(await schemasLike('projd\\_%\\_split%')).toEqual([]);
    await expectEachEventOnceInStreamOrder('split');
  });

  it('builds beside the live version when its number of parts changes at the same version', async () => {
    await runUntilCaughtUp([applied('resplit', 1, 2)]);
    await expectEachEventOnceInStreamOrder('resplit');

    await appendAccountEvents(db.pool, { count: 300, streams: 30 });
    const logs = await runUntilCaughtUp([applied('resplit', 1, 4)]);
    expect(message(logs, 'build.started')).toHaveLength(1);
    expect(message(logs, 'build.swapped')).toMatchObject([{ fromVersion: 1, version: 1 }]);
    expect(logs.filter((line) => line.msg === 'projection.setup' && line.projection === 'resplit')).toEqual([]); // not in place
    expect(buildParts(logs, 'resplit')).toEqual(['0/4', '1/4', '2/4', '3/4']);
    expect(await checkpoints('resplit')).toEqual([0, 1, 2, 3].map((part) => ({ part, parts: 4, version: 1 })));
    expect(await checkpoints('resplit:build')).toEqual([]);
    await expectEachEventOnceInStreamOrder('resplit');
  });

  it('applies, inside the swap, what was committed after its parts caught up', async () => {
    await runUntilCaughtUp([applied('caught', 1, 3)]);
    // The live projection's lock held here: the swap waits for it once the build has caught up.
    const live = await db.pool.connect();
    const build = await db.pool.connect();
    try {
      await live.query('begin');
      await lockProjection(live, 'caught');
      const logs = await runUntilCaughtUp([applied('caught', 2, 3)], {
        whileRunning: async (logs) => {
          try {
            await waitFor(() => buildParts(logs.filter((line) => line.to === 'live'), 'caught').length === 3, {
              timeoutMs: 30_000,
              message: 'every build part to catch up',
            });
            // The build's lock held too: its runners stand by, and what is appended now is the swap's to apply.
            await build.query('begin');
            await lockProjection(build, 'caught:build');
            await appendAccountEvents(db.pool, { count: 90, streams: 30 });
            await live.query('commit');
            await waitFor(() => waitsForLock(`caught:build`), { message: 'the swap to wait for the build\'s lock' });
          } finally {
            // Also on a failure: the app stops only once its swap is through.
            await live.query('commit');
            await build.query('commit');
          }
        },
      });
      expect(message(logs, 'build.swapped')).toMatchObject([{ fromVersion: 1, version: 2, caughtUp: 90 }]);
    } finally {
      for (const client of [live, build]) {
        await client.query('rollback').catch(() => undefined);
        client.release();
      }
    }
    expect(await checkpoints('caught')).toEqual([0, 1, 2].map((part) => ({ part, parts: 3, version: 2 })));
    await expectEachEventOnceInStreamOrder('caught');
  });
});

describe('an event parked while the new version builds', () => {
  const POISON_OF = { 1: 3, 2: 7 } as Record<number, number>; // the event each version fails on (data.n)

  const parking = (version: number) =>
    defineProjection({
      name: 'parking',
      version,
      onError: 'park',
      maxAttempts: 1,
      setup: 'create table parking_applied (position bigint primary key)',
      reset: 'truncate parking_applied',
      handlers: {
        'item.added': async (event: ProjdEvent<{ n: number }>, db) => {
          if (event.data.n === POISON_OF[version]) throw new Error(`version ${version} cannot take event ${event.data.n}`);
          await db.query('insert into parking_applied (position) values ($1)', [event.position]);
        },
      },
    });

  async function parked(projection: string): Promise<string[]> {
    const { rows } = await db.pool.query<{ position: string }>(
      `select position::text from projd.failed_events where projection = $1 and status = 'parked' order by position`,
      [projection],
    );
    return rows.map((row) => row.position);
  }

  it('is parked under the build while it builds, and is the projection\'s after the swap, the old version\'s gone', async () => {
    await appendItems(db.pool, 20);
    const { rows } = await db.pool.query<{ n: number; position: string }>(
      `select (data->>'n')::int as n, position::text from projd.events where type = 'item.added' and (data->>'n')::int in (3, 7)`,
    );
    const positionOf = Object.fromEntries(rows.map((row) => [row.n, row.position]));

    await runUntilCaughtUp([parking(1)]);
    expect(await parked('parking')).toEqual([positionOf[3]]);

    // The live projection's lock held here: the swap waits for it, and the build stands caught up.
    const holder = await db.pool.connect();
    try {
      await holder.query('begin');
      await lockProjection(holder, 'parking');
      await runUntilCaughtUp([parking(2)], {
        buildParks: true,
        whileRunning: async () => {
          try {
            await waitFor(async () => (await parked('parking:build')).length === 1, {
              timeoutMs: 30_000,
              message: 'the build to park its poison event',
            });
            expect(await parked('parking:build')).toEqual([positionOf[7]]);
            expect(await parked('parking')).toEqual([positionOf[3]]); // version 1 serves, its parked event too
            // Status shows both: version 1 serving, with its parked event, and the build beside it, with its own.
            const [status] = (await readStatusReport(db.pool, [parking(2)], { pollInterval: 100, stallAfter: 5000 })).projections;
            expect(status).toMatchObject({ version: 2, storedVersion: 1, rebuildPending: true, failedEvents: 1 });
            expect(status!.state).not.toBe('stopped');
            expect(status!.build).toMatchObject({ version: 2, failedEvents: 1, blockedBy: null, schema: 'projd_build_parking' });
          } finally {
            await holder.query('commit'); // also on a failure: the app stops only once its swap is through
          }
        },
      });
    } finally {
      await holder.query('rollback').catch(() => undefined);
      holder.release();
    }
    expect(await parked('parking')).toEqual([positionOf[7]]);
    expect(await parked('parking:build')).toEqual([]);
    const { rows: failed } = await db.pool.query<{ n: string }>(
      `select count(*)::text as n from projd.failed_events where projection like 'parking%'`,
    );
    expect(failed[0]!.n).toBe('1');
    const { rows: applied } = await db.pool.query<{ n: string }>('select count(*)::text as n from parking_applied');
    expect(applied[0]!.n).toBe('19');
  });
});

describe('the SQL batch form and a YAML projection', () => {
  function sqlBatch(name: string, version: number): Projection {
    return defineProjection({
      name,
      version,
      eventTypes: ACCOUNT_TYPES,
      setup: [
        `create table if not exists ${name} (account_id text primary key, balance bigint not null default 0,
                               events integer not null default 0, low_balance bigint, last_type text)`,
        `create table if not exists ${name}_applied (position bigint primary key, stream_id text not null,
                                       stream_version integer not null, times integer not null default 1)`,
      ],
      reset: [`truncate ${name}`, `truncate ${name}_applied`],
      batch: accountsBatchSql(name),
    });
  }

  it('builds and swaps a batch: projection to the read model an in-place rebuild makes', async () => {
    await appendAccountEvents(db.pool, { count: 400, streams: 20 });
    await runUntilCaughtUp([sqlBatch('sql_green', 1), sqlBatch('sql_in_place', 1)]);
    await appendAccountEvents(db.pool, { count: 200, streams: 20 });
    const logs = await runUntilCaughtUp([sqlBatch('sql_green', 2)]);
    expect(message(logs, 'build.swapped')).toMatchObject([{ projection: 'sql_green', fromVersion: 1, version: 2 }]);
    await runUntilCaughtUp([sqlBatch('sql_in_place', 2)], { rebuild: 'in-place' });
    await expectSameReadModel(db.pool, ['sql_green', 'sql_in_place'], await countAccountEvents());
  });

  it('builds and swaps a YAML projection to the read model an in-place rebuild makes', async () => {
    const yaml = (name: string, version: number) => `name: ${name}
version: ${version}
setup: create table if not exists ${name} (stream_id text primary key, total bigint not null, events integer not null)
reset: truncate ${name}
handlers:
  account.credited: |
    insert into ${name} (stream_id, total, events) values (:streamId, ${version} * (:data->>'amount')::bigint, 1)
    on conflict (stream_id) do update set total = ${name}.total + excluded.total, events = ${name}.events + 1
`;
    const project = await writeProject(
      Object.fromEntries(
        ['yaml_green', 'yaml_in_place'].flatMap((name) =>
          [1, 2].map((version) => [`v${version}/${name}.yaml`, yaml(name, version)]),
        ),
      ),
      { linkPackage: false },
    );
    projects.push(project);
    const load = (version: number, name: string) => loadProjectionFile(project.path(`v${version}/${name}.yaml`));
    await runUntilCaughtUp([await load(1, 'yaml_green'), await load(1, 'yaml_in_place')]);
    await appendAccountEvents(db.pool, { count: 100, streams: 20 });
    const logs = await runUntilCaughtUp([await load(2, 'yaml_green')]);
    expect(message(logs, 'build.swapped')).toMatchObject([{ projection: 'yaml_green', fromVersion: 1, version: 2 }]);
    await runUntilCaughtUp([await load(2, 'yaml_in_place')], { rebuild: 'in-place' });

    const checksum = async (name: string) =>
      (
        await db.pool.query<{ md5: string }>(
          `select md5(string_agg(concat_ws(':', stream_id, total, events), ',' order by stream_id)) as md5 from ${name}`,
        )
      ).rows[0]!.md5;
    expect(await checksum('yaml_green')).toBe(await checksum('yaml_in_place'));
    // Version 2's figures: twice every credit, each credit once.
    const { rows } = await db.pool.query<{ expected: string; total: string; events: string; credits: string }>(
      `select (select (2 * sum((data->>'amount')::bigint))::text from projd.events where type = 'account.credited') as expected,
              (select count(*)::text from projd.events where type = 'account.credited') as credits,
              (select sum(total)::text from yaml_green) as total,
              (select sum(events)::text from yaml_green) as events`,
    );
    expect(rows[0]!.total).toBe(rows[0]!.expected);
    expect(rows[0]!.events).toBe(rows[0]!.credits);
  });
});
