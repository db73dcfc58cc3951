import type pg from 'pg';
import { OperationalError, UserError, errorMessage } from '../errors.js';
import {
  ADDED_ERA_COLUMN,
  ADDED_TRANSACTION_COLUMN,
  adoptedViewSql,
  quoteIdent,
  resolveColumnMapping,
  type ColumnMapping,
  type EventsTableConfig,
  type TableColumn,
} from './adoptedView.js';
import { sqlstateOf } from './classifyError.js';
import { checkOut } from './connect.js';
import { EVENTS_CHANNEL, EVENTS_TABLE, SCHEMA, advisoryLockKey } from './names.js';
import type { Queryable } from './queryable.js';

/** What `projd migrate --adopt` did, one line each, for the CLI to print. */
export interface AdoptResult {
  source: string;
  done: string[];
}

interface InspectedTable {
  /** The table's oid, as text: oids run past 2^31. */
  oid: string;
  /** As `regclass` prints it: quoted where needed, schema-qualified when off the search path. */
  source: string;
  relname: string;
  partitioned: boolean;
  columns: TableColumn[];
}

/** The adding of columns waits at most this long for the table's lock, rather than queue every writer behind it. */
const ALTER_LOCK_TIMEOUT = '5s';

/**
 * `projd migrate --adopt`: makes `projd.events` a view over the application's own events table.
 * Everything is checked before anything changes. Then, on the table: the era and (when it has
 * none) transaction id columns, added without rewriting it; the delivery-order index (and one on
 * the position, when none leads with it), built concurrently leaf partition by leaf partition;
 * the notify trigger. Then, in one transaction: projd's own table, only while empty, replaced
 * by the view, and the functions of its row type recreated over it. Idempotent.
 */
export async function adoptEventsTable(pool: pg.Pool, config: EventsTableConfig): Promise<AdoptResult> {
  if (config.table === undefined) {
    throw new UserError('events.table is not set: name the table to adopt (projd migrate --adopt)');
  }
  const table = await inspectTable(pool, config.table);
  const mapping = resolveColumnMapping(config, table.source, table.columns);
  if (config.where !== undefined) await checkWhere(pool, table.source, config.where);
  await assertProjdTableEmpty(pool);
  await assertEventsReplaceable(pool);

  const done: string[] = [];
  done.push(...(await addOrderColumns(pool, table, mapping)));
  const columns = await readColumns(pool, table.oid);
  const order = [ADDED_ERA_COLUMN, mapping.transactionId ?? ADDED_TRANSACTION_COLUMN, mapping.position!];
  done.push(...(await ensureIndex(pool, table, 'projd_order_idx', order)));
  if (!(await hasIndexLeadingWith(pool, table.oid, mapping.position!))) {
    done.push(...(await ensureIndex(pool, table, 'projd_position_idx', [mapping.position!])));
  }
  done.push(...(await ensureStoreTriggers(pool, table)));
  await replaceEventsRelation(pool, {
    sql: adoptedViewSql({ source: table.source, mapping, columns, where: config.where }),
    source: table.source,
    config,
    mapping,
  });
  done.push(`projd.events reads ${table.source}`);
  return { source: table.source, done };
}

const inspectTableSql = /* sql */ `
  select c.oid::text as oid, c.oid::regclass::text as source, c.relname, c.relkind
    from pg_class c where c.oid = to_regclass($1)`;

const readColumnsSql = /* sql */ `
  select a.attname as name, a.atttypid::regtype::text as type
    from pg_attribute a
   where a.attrelid = $1::oid and a.attnum > 0 and not a.attisdropped
   order by a.attnum`;

async function inspectTable(db: Queryable, name: string): Promise<InspectedTable> {
  let rows: { oid: string; source: string; relname: string; relkind: string }[];
  try {
    ({ rows } = await db.query(inspectTableSql, [name]));
  } catch (error) {
    throw new UserError(`events.table: '${name}' is not a table name: ${errorMessage(error)}`, { cause: error });
  }
  const row = rows[0];
  if (!row) throw new UserError(`events.table: no table '${name}' in this database`);
  if (row.relkind !== 'r' && row.relkind !== 'p') {
    throw new UserError(`events.table: '${name}' is not a table (a view or another relation); adopt the table it reads`);
  }
  return { ...row, partitioned: row.relkind === 'p', columns: await readColumns(db, row.oid) };
}

async function readColumns(db: Queryable, oid: string): Promise<TableColumn[]> {
  const { rows } = await db.query<TableColumn>(readColumnsSql, [oid]);
  return rows;
}

/**
 * Plans the condition once, reading nothing, so a mistake in it stops the adoption before it
 * starts. The parameter sends it as one prepared statement: a `;` in it is refused, not run.
 */
async function checkWhere(db: Queryable, source: string, where: string): Promise<void> {
  try {
    await db.query(`explain select from ${source} t where (${where}) and $1::boolean`, [true]);
  } catch (error) {
    throw new UserError(`events.where: ${errorMessage(error)}`, { cause: error });
  }
}

const eventsRelationSql = /* sql */ `select c.relkind from pg_class c where c.oid = '${EVENTS_TABLE}'::regclass`;

/** projd's own table goes only while it holds nothing: its events would be lost with it. */
async function assertProjdTableEmpty(db: Queryable): Promise<void> {
  const { rows } = await db.query<{ relkind: string }>(eventsRelationSql);
  if (rows[0]?.relkind !== 'r') return;
  const { rows: held } = await db.query<{ held: boolean }>(`select exists (select from ${EVENTS_TABLE}) as held`);
  if (held[0]!.held) {
    throw new UserError(
      `${EVENTS_TABLE} holds events: a store is adopted only while projd's own table is empty, and its events would be lost`,
    );
  }
}

/**
 * The era, and a transaction id when the table has none. A constant default (the era is
 * immutable, `'0'` is a constant) is stored once in the catalog, so the rows already there are
 * not rewritten; they are all committed, since the ALTER waits for their writers, and sort first
 * by position. Only then does the default become the writer's transaction id, for new rows.
 */
async function addOrderColumns(pool: pg.Pool, table: InspectedTable, mapping: ColumnMapping): Promise<string[]> {
  const has = new Set(table.columns.map((column) => column.name));
  const statements: string[] = [];
  const done: string[] = [];
  if (!has.has(ADDED_ERA_COLUMN)) {
    statements.push(
      `alter table ${table.source} add column ${quoteIdent(ADDED_ERA_COLUMN)} integer not null default ${SCHEMA}.current_era()`,
    );
    done.push(`added column ${ADDED_ERA_COLUMN} to ${table.source}`);
  }
  if (mapping.transactionId === undefined && !has.has(ADDED_TRANSACTION_COLUMN)) {
    statements.push(
      `alter table ${table.source} add column ${quoteIdent(ADDED_TRANSACTION_COLUMN)} xid8 not null default '0'`,
      `alter table ${table.source} alter column ${quoteIdent(ADDED_TRANSACTION_COLUMN)} set default pg_current_xact_id()`,
    );
    done.push(`added column ${ADDED_TRANSACTION_COLUMN} to ${table.source}`);
  }
  if (statements.length === 0) return done;
  const { client, release } = await checkOut(pool);
  try {
    await client.query('begin');
    await client.query(`set local lock_timeout = '${ALTER_LOCK_TIMEOUT}'`);
    for (const statement of statements) await client.query(statement);
    await client.query('commit');
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    if (sqlstateOf(error) === '55P03') {
      throw new OperationalError(
        `${table.source} stayed locked for ${ALTER_LOCK_TIMEOUT} (a long transaction on it?): nothing was changed; run projd migrate --adopt again`,
        { cause: error },
      );
    }
    throw error;
  } finally {
    release();
  }
  return done;
}

interface Leaf {
  source: string;
  relname: string;
}

/** The table itself, or the leaves of its partition tree: the tables that hold rows. */
async function leavesOf(db: Queryable, table: InspectedTable): Promise<Leaf[]> {
  // pg_partition_tree has no rows for a table that is not partitioned.
  if (!table.partitioned) return [table];
  const { rows } = await db.query<Leaf & { relkind: string }>(
    `select c.oid::regclass::text as source, c.relname, c.relkind
       from pg_partition_tree($1::oid::regclass) p join pg_class c on c.oid = p.relid
      where p.isleaf order by c.oid`,
    [table.oid],
  );
  const foreign = rows.find((leaf) => leaf.relkind !== 'r');
  if (foreign) throw new UserError(`events.table: partition ${foreign.source} of ${table.source} is not a plain table and cannot be indexed`);
  return rows;
}

/** An index name in the table's schema, within PostgreSQL's 63 bytes. */
function indexName(relname: string, suffix: string): string {
  return `${relname.slice(0, 62 - suffix.length)}_${suffix}`;
}

const indexStateSql = /* sql */ `
  select i.indisvalid as valid, n.nspname as schema
    from pg_class t
    join pg_class c on c.relnamespace = t.relnamespace and c.relname = $2
    join pg_index i on i.indexrelid = c.oid
    join pg_namespace n on n.oid = c.relnamespace
   where t.oid = $1::regclass`;

/**
 * `create index concurrently` on each leaf, which writers never wait for (it cannot run in a
 * transaction, or on a partitioned table); then, on a partitioned table, the same index on the
 * parent, which only attaches the leaves' ones. An invalid index left by a build that failed
 * is dropped and built again.
 */
async function ensureIndex(pool: pg.Pool, table: InspectedTable, suffix: string, columns: string[]): Promise<string[]> {
  const keys = columns.map(quoteIdent).join(', ');
  const done: string[] = [];
  const targets = [...(await leavesOf(pool, table)), ...(table.partitioned ? [table] : [])];
  for (const target of targets) {
    const name = indexName(target.relname, suffix);
    const { rows } = await pool.query<{ valid: boolean; schema: string }>(indexStateSql, [target.source, name]);
    if (rows[0]?.valid) continue;
    if (rows[0]) await pool.query(`drop index concurrently ${quoteIdent(rows[0].schema)}.${quoteIdent(name)}`);
    const concurrently = target === table && table.partitioned ? '' : ' concurrently';
    await pool.query(`create index${concurrently} ${quoteIdent(name)} on ${target.source} (${keys})`);
    done.push(`created index ${name} on ${target.source} (${columns.join(', ')})`);
  }
  return done;
}

async function hasIndexLeadingWith(db: Queryable, oid: string, column: string): Promise<boolean> {
  const { rows } = await db.query(
    `select from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
      where i.indrelid = $1::oid and a.attname = $2 and i.indisvalid and i.indpred is null`,
    [oid, column],
  );
  return rows.length > 0;
}

/** The statement triggers projd's own table has that an adopted table gets too, by name. */
const STORE_TRIGGERS = [
  // One wake-up per statement.
  { name: 'projd_events_notify', timing: 'after', fn: `${SCHEMA}.events_notify()`, says: `channel ${EVENTS_CHANNEL}` },
];

/**
 * The store's statement triggers, as on projd's own table. On the table and each leaf: a
 * statement trigger fires only on the table the statement names, and a writer may insert into
 * a partition.
 */
async function ensureStoreTriggers(pool: pg.Pool, table: InspectedTable): Promise<string[]> {
  const targets = table.partitioned ? [table, ...(await leavesOf(pool, table))] : [table];
  const done: string[] = [];
  for (const target of targets) {
    for (const trigger of STORE_TRIGGERS) {
      const { rows } = await pool.query(`select from pg_trigger where tgrelid = $1::regclass and tgname = $2`, [
        target.source,
        trigger.name,
      ]);
      if (rows.length > 0) continue;
      await pool.query(
        `create trigger ${trigger.name} ${trigger.timing} insert on ${target.source}
           for each statement execute function ${trigger.fn}`,
      );
      done.push(`created trigger ${trigger.name} on ${target.source} (${trigger.says})`);
    }
  }
  return done;
}

/** The functions that return or take projd.events' row type (`batch_events()`, …), to recreate over the view. */
const rowTypeFunctionsSql = /* sql */ `
  with events as (select c.reltype from pg_class c where c.oid = '${EVENTS_TABLE}'::regclass)
  select p.oid::regprocedure::text as signature, pg_get_functiondef(p.oid) as definition
    from pg_proc p, events
   where p.prorettype = events.reltype or events.reltype = any(p.proargtypes::oid[])
   order by p.oid`;

interface Replacement {
  sql: string;
  source: string;
  config: EventsTableConfig;
  mapping: ColumnMapping;
}

/** Drops projd.events' row-type functions and projd.events itself, as the replacement does. */
async function dropEventsRelation(client: Queryable): Promise<{ signature: string; definition: string }[]> {
  const { rows } = await client.query<{ relkind: string }>(eventsRelationSql);
  const isTable = rows[0]!.relkind === 'r';
  if (isTable) await client.query(`lock table ${EVENTS_TABLE} in access exclusive mode`);
  await assertProjdTableEmpty(client);
  const { rows: functions } = await client.query<{ signature: string; definition: string }>(rowTypeFunctionsSql);
  for (const fn of functions) await client.query(`drop function ${fn.signature}`);
  await client.query(`drop ${isTable ? 'table' : 'view'} ${EVENTS_TABLE}`);
  return functions;
}

/** dependent_objects_still_exist: a view, foreign key or function of the user's own needs projd.events. */
function dependentsError(error: unknown): UserError | undefined {
  if (sqlstateOf(error) !== '2BP01') return undefined;
  // The detail names the dependents, one a line.
  const detail = String((error as { detail?: unknown }).detail ?? '').split('\n').join(', ');
  return new UserError(
    `${EVENTS_TABLE} cannot be replaced: ${detail || errorMessage(error)}; drop what depends on it, adopt, then create it again`,
    { cause: error },
  );
}

/** The replacement tried and rolled back before the table is touched, so that what depends on projd.events stops it first. */
async function assertEventsReplaceable(pool: pg.Pool): Promise<void> {
  const { client, release } = await checkOut(pool);
  try {
    await client.query('begin');
    await dropEventsRelation(client);
  } catch (error) {
    throw dependentsError(error) ?? error;
  } finally {
    await client.query('rollback').catch(() => undefined);
    release();
  }
}

/** In one transaction, under the migration lock: projd.events becomes the view (again), and the record says so. */
async function replaceEventsRelation(pool: pg.Pool, replacement: Replacement): Promise<void> {
  const { client, release } = await checkOut(pool);
  try {
    await client.query('begin');
    await client.query('select pg_advisory_xact_lock($1::bigint)', [advisoryLockKey('migrate', SCHEMA)]);
    const functions = await dropEventsRelation(client);
    await client.query(replacement.sql);
    await client.query(
      `create trigger events_refuse_append instead of insert or update or delete on ${EVENTS_TABLE}
         for each row execute function ${SCHEMA}.events_refuse_append()`,
    );
    for (const fn of functions) await client.query(fn.definition);
    await client.query(
      `insert into ${SCHEMA}.adopted_table (source, config, columns) values ($1, $2, $3)
       on conflict (singleton) do update
         set source = excluded.source, config = excluded.config, columns = excluded.columns, adopted_at = now()`,
      [replacement.source, JSON.stringify(replacement.config), JSON.stringify(replacement.mapping)],
    );
    await client.query('commit');
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    throw dependentsError(error) ?? error;
  } finally {
    release();
  }
}
