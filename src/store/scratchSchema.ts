import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Queryable } from './queryable.js';

/**
 * Schemas of their own for scratch builds: a projection built with `search_path` set to one of
 * them puts its unqualified tables there, beside the live ones, and the schema goes with them.
 */

/** Every scratch schema's name starts so: an operator finds one a killed process left behind. */
export const SCRATCH_SCHEMA_PREFIX = 'projd_scratch_';

/** `projd_scratch_<random>_<projection>`, within PostgreSQL's 63 bytes. */
export function scratchSchemaName(projection: string): string {
  return `${SCRATCH_SCHEMA_PREFIX}${randomBytes(4).toString('hex')}_${projection}`.slice(0, 63);
}

export async function createScratchSchema(db: Queryable, schema: string): Promise<void> {
  await db.query(`create schema ${pg.escapeIdentifier(schema)}`);
}

/** Drops it with whatever the build made in it. Idempotent. */
export async function dropScratchSchema(db: Queryable, schema: string): Promise<void> {
  await db.query(`drop schema if exists ${pg.escapeIdentifier(schema)} cascade`);
}

/** `set local search_path` to the schema alone: only unqualified names resolve there, for the rest of the transaction. */
export function searchPathSql(schema: string): string {
  return `set local search_path = ${pg.escapeIdentifier(schema)}`;
}

const tablesInSchemaSql = /* sql */ `
  select c.relname as name
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
   where n.nspname = $1 and c.relkind in ('r', 'p')
   order by c.relname`;

/** The tables (plain and partitioned) in a schema, by name. */
export async function tablesInSchema(db: Queryable, schema: string): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>(tablesInSchemaSql, [schema]);
  return rows.map((row) => row.name);
}

/** A table found by name, with its columns in order. */
export interface TableShape {
  schema: string;
  name: string;
  /** Its columns' names, in column order. */
  columns: string[];
  /** Their types, as `format_type` writes them: `bigint`, `character varying(20)`. */
  types: string[];
}

const tableShapeSql = /* sql */ `
  with t as (select to_regclass($1) as oid)
  select n.nspname as schema, c.relname as name,
         array(select a.attname::text from pg_attribute a
                where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped order by a.attnum) as columns,
         array(select format_type(a.atttypid, a.atttypmod) from pg_attribute a
                where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped order by a.attnum) as types
    from t
    join pg_class c on c.oid = t.oid
    join pg_namespace n on n.oid = c.relnamespace`;

/**
 * The table `name` as the session resolves it: in `schema` when given, else through its
 * `search_path` (as the live projection's unqualified SQL did). Null when there is none.
 */
export async function tableShape(db: Queryable, name: string, schema?: string): Promise<TableShape | null> {
  const relation = schema === undefined ? pg.escapeIdentifier(name) : `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(name)}`;
  const { rows } = await db.query<TableShape>(tableShapeSql, [relation]);
  return rows[0] ?? null;
}

/** A table's content in two numbers. */
export interface TableChecksum {
  rows: bigint;
  /** The sum of a 64-bit hash of each row's text, modulo 2^64, as 16 hex digits: blind to row order. */
  checksum: string;
}

/**
 * Counts the table's rows and adds up a hash of each, over the columns of `shape` by name: two
 * tables with the same rows, in any order and any physical layout, get the same numbers.
 * Rows become text as the session prints them, so compare tables read by one session.
 */
export async function tableChecksum(db: Queryable, shape: TableShape): Promise<TableChecksum> {
  const columns = shape.columns.map((column) => `t.${pg.escapeIdentifier(column)}`);
  // row(…) of no column is valid SQL: every row of a column-less table hashes alike.
  const sql = /* sql */ `
    select count(*)::text as rows,
           coalesce(sum(hashtextextended(row(${columns.join(', ')})::text, 0)::numeric), 0)::text as sum
      from ${pg.escapeIdentifier(shape.schema)}.${pg.escapeIdentifier(shape.name)} t`;
  const { rows } = await db.query<{ rows: string; sum: string }>(sql);
  const row = rows[0]!;
  const modulo = ((BigInt(row.sum) % 2n ** 64n) + 2n ** 64n) % 2n ** 64n;
  return { rows: BigInt(row.rows), checksum: modulo.toString(16).padStart(16, '0') };
}
