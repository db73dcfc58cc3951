import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBatchSql } from '../../src/store/readBatch.js';
import { runCli, startDaemon, type Daemon, type LogLine } from '../helpers/cli.js';
import { startIsolatedPostgres, type IsolatedPostgres } from '../helpers/database.js';
import { writeProject, type Project } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

// Adopting an application's own events table, and a real `projd run` applying what the
// application inserts there. Late commits hold transactions open, which holds back the xmin
// horizon of the whole server: this file gets a server of its own.
let server: IsolatedPostgres;

beforeAll(async () => {
  server = await startIsolatedPostgres();
});

afterAll(async () => {
  await server?.stop();
});

interface Store {
  url: string;
  pool: pg.Pool;
}

async function createDatabase(name: string, schemaSql: string): Promise<Store> {
  await server.pool.query(`create database ${name}`);
  const url = server.url.replace(/\/[^/?]*(\?|$)/, `/${name}$1`);
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on('error', () => {});
  await pool.query(schemaSql);
  return { url, pool };
}

// Every event once: `position` is unique, so a second application would fail the batch.
const APPLIED_YAML = `name: applied
version: 1
setup: |
  create table if not exists applied (
    seq bigserial primary key, position bigint not null unique, stream_id text not null,
    stream_version integer not null, type text not null, amount integer, schema_version integer not null)
reset: truncate applied
handlers:
  '*': |
    insert into applied (position, stream_id, stream_version, type, amount, schema_version)
    values (:position, :streamId, :streamVersion, :type, (:data->>'amount')::integer, :schemaVersion)
`;

function projectFor(store: Store, events: string): Promise<Project> {
  return writeProject({
    'projd.yaml': `database:
  url: ${store.url}
projections:
  # Minutes: every event must arrive through the notify trigger on the adopted table.
  pollInterval: 10m
metrics:
  port: 0
health:
  stallAfter: 1ms
${events}`,
    'projections/applied.yaml': APPLIED_YAML,
    'projections/per_type.yaml': PER_TYPE_YAML,
  });
}

// The SQL batch form reads projd.batch_events(), recreated over the view.
const PER_TYPE_YAML = `name: per_type
version: 1
setup: create table if not exists per_type (type text primary key, events integer not null)
reset: truncate per_type
eventTypes: ['*']
batch: |
  insert into per_type (type, events)
  select type, count(*) from projd.batch_events() group by type
  on conflict (type) do update set events = per_type.events + excluded.events
`;

async function perType(store: Store): Promise<Record<string, number>> {
  const { rows } = await store.pool.query<{ type: string; events: number }>('select type, events from per_type order by type');
  return Object.fromEntries(rows.map((row) => [row.type, row.events]));
}

async function applied(store: Store): Promise<{ position: string; stream_id: string; type: string; amount: number }[]> {
  const { rows } = await store.pool.query('select position::text, stream_id, type, amount from applied order by seq');
  return rows;
}

const isStalled = (line: LogLine) => line.msg === 'projection.state' && line.to === 'stalled';

/**
 * A transaction that takes its id first and inserts last: the other insert commits first, with
 * a younger id, and the daemon must hold it back until the older one commits, then apply both.
 */
async function lateCommit(
  store: Store,
  daemon: Daemon,
  insert: (db: pg.ClientBase | pg.Pool, stream: string, amount: number) => Promise<string>,
): Promise<{ older: string; younger: string }> {
  const slow = await store.pool.connect();
  try {
    await slow.query('begin');
    await slow.query('select pg_current_xact_id()');
    const from = daemon.logs().length;
    const younger = await insert(store.pool, 'late-b', 20);
    await daemon.waitForLog(isStalled, 20_000, { from });
    const older = await insert(slow, 'late-a', 10);
    await slow.query('commit');
    return { older, younger };
  } finally {
    slow.release(true);
  }
}

/** The readBatch statement's plan over the adopted view, with sequential scans priced out of reach. */
async function batchPlan(store: Store): Promise<string> {
  const client = await store.pool.connect();
  try {
    await client.query('begin');
    await client.query('set local enable_seqscan = off');
    const { rows } = await client.query<{ 'QUERY PLAN': string }>(`explain ${readBatchSql}`, [0, '0', '0', ['t'], [], 100]);
    await client.query('rollback');
    return rows.map((row) => row['QUERY PLAN']).join('\n');
  } finally {
    client.release();
  }
}

describe('adopting a plain table (bigserial id, no stream version)', () => {
  let store: Store;
  let project: Project;

  beforeAll(async () => {
    store = await createDatabase(
      'plain',
      `create table public.orders_events (
         id bigserial primary key,
         aggregate_id text not null,
         event_type text not null,
         payload jsonb not null,
         occurred_at timestamptz not null default now());
       insert into orders_events (aggregate_id, event_type, payload) values
         ('order-1', 'order.placed', '{"amount": 1}'), ('order-2', 'order.placed', '{"amount": 2}');`,
    );
    project = await projectFor(
      store,
      `events:
  table: public.orders_events
  columns:
    position: id
    streamId: aggregate_id
    type: event_type
    data: payload
    createdAt: occurred_at
`,
    );
  });

  afterAll(async () => {
    await store?.pool.end();
    await project?.cleanup();
  });

  it('adopts the table: columns added without a rewrite, indexes, trigger, the view', async () => {
    const result = await runCli(['migrate', '--adopt'], { cwd: project.dir });

    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('added column projd_era to orders_events\n');
    expect(result.stdout).toContain('added column projd_transaction_id to orders_events\n');
    expect(result.stdout).toContain('created index orders_events_projd_order_idx on orders_events (projd_era, projd_transaction_id, id)\n');
    expect(result.stdout).toContain('created trigger projd_events_notify on orders_events (channel projd_events)\n');
    expect(result.stdout).toContain('projd.events reads orders_events\n');
    // The primary key already leads with the position.
    expect(result.stdout).not.toContain('projd_position_idx');
    // Rows already there sort first, by position; new rows get their writer's transaction id.
    const { rows } = await store.pool.query(
      `select position::text, era, transaction_id::text, stream_version, metadata, schema_version from projd.events order by position`,
    );
    expect(rows).toEqual([
      { position: '1', era: 0, transaction_id: '0', stream_version: 0, metadata: {}, schema_version: 1 },
      { position: '2', era: 0, transaction_id: '0', stream_version: 0, metadata: {}, schema_version: 1 },
    ]);
  });

  it('adopting again changes nothing', async () => {
    const catalog = () =>
      store.pool.query(
        `select (select array_agg(indexdef order by indexname) from pg_indexes where tablename = 'orders_events') as indexes,
                (select array_agg(tgname order by tgname) from pg_trigger where tgrelid = 'orders_events'::regclass) as triggers,
                (select array_agg(attname order by attnum) from pg_attribute where attrelid = 'orders_events'::regclass and attnum > 0) as columns,
                pg_get_viewdef('projd.events'::regclass) as view`,
      );
    const before = (await catalog()).rows;

    const result = await runCli(['migrate', '--adopt'], { cwd: project.dir });

    expect(result).toMatchObject({ code: 0, stderr: '', stdout: 'projd: database is up to date\nprojd.events reads orders_events\n' });
    expect((await catalog()).rows).toEqual(before);
  });

  it('the batch read keeps to the delivery-order index through the view', async () => {
    const plan = await batchPlan(store);
    expect(plan).toContain('orders_events_projd_order_idx');
    expect(plan).toMatch(/Index Cond: \(\(ROW\(projd_era, projd_transaction_id, id\) > ROW\(/);
    expect(plan).not.toContain('Seq Scan');
  });

  it('a daemon warns once per lost guarantee, applies plain inserts once each, late commits included', async () => {
    const daemon = startDaemon(['run'], { cwd: project.dir });
    try {
      await daemon.waitForLog('daemon.started');
      const warnings = daemon.logs().filter((line) => line.msg === 'store.guarantee_lost');
      expect(warnings.map((line) => line.guarantee)).toEqual(['stream_order', 'restore_check']);
      expect(warnings[0]!.detail).toMatch(/^orders_events has no stream version \(events\.columns\.streamVersion\)/);
      await waitFor(async () => (await applied(store)).length === 2, { timeoutMs: 20_000, message: 'the two rows already there applied' });

      const insert = async (db: pg.ClientBase | pg.Pool, stream: string, amount: number) => {
        const { rows } = await db.query<{ id: string }>(
          `insert into orders_events (aggregate_id, event_type, payload) values ($1, 'order.paid', jsonb_build_object('amount', $2::integer)) returning id::text`,
          [stream, amount],
        );
        return rows[0]!.id;
      };
      const { older, younger } = await lateCommit(store, daemon, insert);
      expect(BigInt(older)).toBeGreaterThan(BigInt(younger));
      await waitFor(async () => (await applied(store)).length === 4, { timeoutMs: 20_000, message: 'the late commit applied' });

      // Delivery order is the transactions' order: the older one first, though its id is higher.
      expect(await applied(store)).toEqual([
        { position: '1', stream_id: 'order-1', type: 'order.placed', amount: 1 },
        { position: '2', stream_id: 'order-2', type: 'order.placed', amount: 2 },
        { position: older, stream_id: 'late-a', type: 'order.paid', amount: 10 },
        { position: younger, stream_id: 'late-b', type: 'order.paid', amount: 20 },
      ]);
      await waitFor(async () => (await perType(store))['order.paid'] === 2, { timeoutMs: 20_000, message: 'the batch form caught up' });
      expect(await perType(store)).toEqual({ 'order.placed': 2, 'order.paid': 2 });

      const status = await runCli(['status', '--json'], { cwd: project.dir });
      expect(status.code).toBe(0);
      expect(JSON.parse(status.stdout)).toEqual(
        expect.arrayContaining([expect.objectContaining({ name: 'applied', headPosition: older, lagEvents: '0' })]),
      );
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  });

  it('projd append refuses an adopted store with one line, exit 2', async () => {
    const result = await runCli(['append', 'order-9', 'order.placed', '{}'], { cwd: project.dir });

    expect(result).toMatchObject({
      code: 2,
      stdout: '',
      stderr: 'projd: this event store is adopted from orders_events: append through the application that owns it\n',
    });
  });
});

// Emmett's PostgreSQL event store, as its schema creates it (emmett-postgresql `schema/tables.ts`):
// emt_messages, partitioned by list on `partition`, each partition by list on `is_archived`; a
// global position from a sequence, the writer's xid8, a text schema version and a message kind.
const EMMETT_SCHEMA = `
  create sequence if not exists emt_global_message_position;
  create table if not exists emt_messages (
    stream_position        bigint       not null,
    global_position        bigint       default nextval('emt_global_message_position'),
    transaction_id         xid8         not null,
    created                timestamptz  not null default now(),
    is_archived            boolean      not null default false,
    message_kind           varchar(1)   not null default 'E',
    stream_id              text         not null,
    partition              text         not null default 'emt:default',
    message_schema_version text         not null,
    message_id             text         not null,
    message_type           text         not null,
    message_data           jsonb        not null,
    message_metadata       jsonb        not null,
    primary key (stream_id, stream_position, partition, is_archived)
  ) partition by list (partition);
  create table emt_messages_emt_default partition of emt_messages for values in ('emt:default') partition by list (is_archived);
  create table emt_messages_emt_default_active partition of emt_messages_emt_default for values in (false);
  create table emt_messages_emt_default_archived partition of emt_messages_emt_default for values in (true);
  create table emt_messages_tenant_a partition of emt_messages for values in ('tenant_a') partition by list (is_archived);
  create table emt_messages_tenant_a_active partition of emt_messages_tenant_a for values in (false);
  create table emt_messages_tenant_a_archived partition of emt_messages_tenant_a for values in (true);
  insert into emt_messages (stream_id, stream_position, message_kind, message_schema_version, message_id, message_type,
                            message_data, message_metadata, transaction_id)
  values ('cart-1', 1, 'E', '', 'm-1', 'cart.opened', '{"amount": 1}', '{}', pg_current_xact_id()),
         ('cart-1', 2, 'E', '2', 'm-2', 'cart.item_added', '{"amount": 2}', '{"by": "ada"}', pg_current_xact_id());`;

/** As Emmett appends: the next stream position, the writer's own transaction id. */
async function emmettAppend(
  db: pg.ClientBase | pg.Pool,
  stream: string,
  amount: number,
  { kind = 'E', partition = 'emt:default' } = {},
): Promise<string> {
  const { rows } = await db.query<{ global_position: string }>(
    `insert into emt_messages (stream_id, stream_position, partition, message_kind, message_schema_version, message_id,
                               message_type, message_data, message_metadata, transaction_id)
     values ($1, 1, $3, $4, '1', gen_random_uuid()::text, 'cart.paid', jsonb_build_object('amount', $2::integer), '{}',
             pg_current_xact_id())
     returning global_position::text`,
    [stream, amount, partition, kind],
  );
  return rows[0]!.global_position;
}

describe("adopting Emmett's emt_messages (partitioned, xid8 of its own)", () => {
  let store: Store;
  let project: Project;

  beforeAll(async () => {
    store = await createDatabase('emmett', EMMETT_SCHEMA);
    project = await projectFor(
      store,
      `events:
  table: emt_messages
  columns:
    position: global_position
    streamVersion: stream_position
    type: message_type
    data: message_data
    metadata: message_metadata
    schemaVersion: message_schema_version
    createdAt: created
  where: message_kind = 'E'
`,
    );
  });

  afterAll(async () => {
    await store?.pool.end();
    await project?.cleanup();
  });

  it('adopts it: indexes built per leaf partition and attached, its own transaction id kept', async () => {
    const result = await runCli(['migrate', '--adopt'], { cwd: project.dir });

    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('added column projd_era to emt_messages\n');
    expect(result.stdout).not.toContain('projd_transaction_id');
    for (const leaf of ['emt_messages_emt_default_active', 'emt_messages_emt_default_archived', 'emt_messages_tenant_a_active', 'emt_messages_tenant_a_archived']) {
      expect(result.stdout).toContain(`created index ${leaf}_projd_order_idx on ${leaf} (projd_era, transaction_id, global_position)\n`);
      expect(result.stdout).toContain(`created index ${leaf}_projd_position_idx on ${leaf} (global_position)\n`);
      expect(result.stdout).toContain(`created trigger projd_events_notify on ${leaf} (channel projd_events)\n`);
    }
    expect(result.stdout).toContain('created index emt_messages_projd_order_idx on emt_messages (projd_era, transaction_id, global_position)\n');
    // Every leaf's index is attached, through the partitions in between: the parent's index is valid.
    const { rows } = await store.pool.query(
      `select count(*)::int as indexes, bool_and(i.indisvalid) as valid
         from pg_partition_tree('emt_messages_projd_order_idx'::regclass) p join pg_index i on i.indexrelid = p.relid`,
    );
    expect(rows).toEqual([{ indexes: 7, valid: true }]);
    const { rows: events } = await store.pool.query(
      `select stream_id, stream_version, type, metadata, schema_version from projd.events order by position`,
    );
    expect(events).toEqual([
      { stream_id: 'cart-1', stream_version: 1, type: 'cart.opened', metadata: {}, schema_version: 1 },
      { stream_id: 'cart-1', stream_version: 2, type: 'cart.item_added', metadata: { by: 'ada' }, schema_version: 2 },
    ]);
  });

  it('adopting again changes nothing', async () => {
    const result = await runCli(['migrate', '--adopt'], { cwd: project.dir });
    expect(result).toMatchObject({ code: 0, stderr: '', stdout: 'projd: database is up to date\nprojd.events reads emt_messages\n' });
  });

  it('the batch read walks each partition in delivery order by its index', async () => {
    const plan = await batchPlan(store);
    expect(plan).toContain('Merge Append');
    expect(plan).toContain('emt_messages_emt_default_active_projd_order_idx');
    expect(plan).toContain('emt_messages_tenant_a_active_projd_order_idx');
    expect(plan).toMatch(/Index Cond: \(\(ROW\(projd_era, transaction_id, global_position\) > ROW\(/);
    expect(plan).not.toContain('Seq Scan');
  });

  it('a daemon applies what Emmett appends once each, in every partition, late commits included, and no command', async () => {
    const daemon = startDaemon(['run'], { cwd: project.dir });
    try {
      await daemon.waitForLog('daemon.started');
      const warnings = daemon.logs().filter((line) => line.msg === 'store.guarantee_lost');
      expect(warnings.map((line) => line.guarantee)).toEqual(['stream_order', 'restore_check', 'transaction_stamp']);
      await waitFor(async () => (await applied(store)).length === 2, { timeoutMs: 20_000, message: 'the two messages already there applied' });

      await emmettAppend(store.pool, 'cart-2', 3, { partition: 'tenant_a' });
      await emmettAppend(store.pool, 'cart-3', 99, { kind: 'C' }); // a command, not an event
      const { older, younger } = await lateCommit(store, daemon, (db, stream, amount) => emmettAppend(db, stream, amount));
      await waitFor(async () => (await applied(store)).length === 5, { timeoutMs: 20_000, message: 'the late commit applied' });

      const rows = await applied(store);
      expect(rows.map((row) => [row.stream_id, row.amount])).toEqual([
        ['cart-1', 1],
        ['cart-1', 2],
        ['cart-2', 3],
        ['late-a', 10],
        ['late-b', 20],
      ]);
      expect(rows.slice(3).map((row) => row.position)).toEqual([older, younger]);
      await waitFor(async () => (await perType(store))['cart.paid'] === 3, { timeoutMs: 20_000, message: 'the batch form caught up' });
      expect(await perType(store)).toEqual({ 'cart.opened': 1, 'cart.item_added': 1, 'cart.paid': 3 });
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  });
});

describe('a bad events section', () => {
  let store: Store;
  let project: Project | undefined;

  beforeAll(async () => {
    store = await createDatabase(
      'bad',
      `create table orders_events (id bigserial primary key, kind text not null, body jsonb not null);`,
    );
  });

  afterAll(async () => {
    await store?.pool.end();
    await project?.cleanup();
  });

  async function adoptWith(events: string) {
    await project?.cleanup();
    project = await writeProject({ 'projd.yaml': `database:\n  url: ${store.url}\n${events}` });
    return runCli(['migrate', '--adopt'], { cwd: project.dir });
  }

  async function tableUntouched(): Promise<void> {
    const { rows } = await store.pool.query(
      `select (select array_agg(attname::text order by attnum) from pg_attribute where attrelid = 'orders_events'::regclass and attnum > 0) as columns,
              (select count(*)::int from pg_trigger where tgrelid = 'orders_events'::regclass) as triggers,
              (select relkind::text from pg_class where oid = 'projd.events'::regclass) as events`,
    );
    expect(rows[0]).toEqual({ columns: ['id', 'kind', 'body'], triggers: 0, events: 'r' });
  }

  it('a column the table lacks: exit 2 naming the key, nothing changed', async () => {
    const result = await adoptWith(
      'events:\n  table: orders_events\n  columns:\n    position: id\n    type: kind\n    data: body\n    streamVersion: version\n',
    );
    expect(result).toMatchObject({
      code: 2,
      stderr: "projd: events.columns.streamVersion: table orders_events has no column 'version'\n",
    });
    await tableUntouched();
  });

  it('a required field without a column: exit 2 naming the key, nothing changed', async () => {
    const result = await adoptWith('events:\n  table: orders_events\n  columns:\n    position: id\n    data: body\n');
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^projd: events\.columns\.type is required: table orders_events has no column 'type'; .*\n$/);
    await tableUntouched();
  });

  it('an unknown key under columns: exit 2 naming it', async () => {
    const result = await adoptWith('events:\n  table: orders_events\n  columns:\n    position: id\n    streamVersoin: v\n');
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^projd: projd\.yaml: unknown key 'events\.columns\.streamVersoin'.*\n$/);
    await tableUntouched();
  });

  it('a where that does not plan: exit 2 naming events.where, nothing changed', async () => {
    const result = await adoptWith(
      'events:\n  table: orders_events\n  columns:\n    position: id\n    type: kind\n    data: body\n  where: nope = 1\n',
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^projd: events\.where: column "nope" does not exist\n$/);
    await tableUntouched();
  });

  it('a where that holds a second statement: exit 2, and the statement never runs', async () => {
    const result = await adoptWith(
      'events:\n  table: orders_events\n  columns:\n    position: id\n    type: kind\n    data: body\n  where: "true); drop table orders_events; select (1"\n',
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('projd: events.where: cannot insert multiple commands into a prepared statement\n');
    await tableUntouched();
  });

  it("a view of the user's own over projd.events: exit 2 naming it, nothing changed", async () => {
    await store.pool.query('create view recent_events as select position, type from projd.events');
    try {
      const result = await adoptWith('events:\n  table: orders_events\n  columns:\n    position: id\n    type: kind\n    data: body\n');
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/^projd: projd\.events cannot be replaced: .*view recent_events depends on .*; drop what depends on it, adopt, then create it again\n$/);
      await tableUntouched();
    } finally {
      await store.pool.query('drop view recent_events');
    }
  });

  it('projd run on a store that has not adopted the configured table: exit 2', async () => {
    project = await writeProject({
      'projd.yaml': `database:\n  url: ${store.url}\nmetrics:\n  port: 0\nevents:\n  table: orders_events\n`,
      'projections/applied.yaml': APPLIED_YAML,
    });
    const result = await runCli(['run'], { cwd: project.dir });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('projd: events.table is orders_events, but the store has not adopted it: run projd migrate --adopt first\n');
  });
});
