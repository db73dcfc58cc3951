import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { CHECKPOINTS_TABLE } from './names.js';
import type { Queryable } from './queryable.js';
import { schemaMissingError } from './schemaMissing.js';

/**
 * Where a blue/green rebuild puts the new version of a projection while the old one serves:
 * a schema of its own, and a checkpoint (and lock, and parked events) under a key of its own.
 * At the swap, what was built there moves into the live schema, and what it replaces moves
 * out to a schema of old tables, dropped or kept.
 */

/**
 * The key the build's checkpoint rows, locks and parked events go under: the projection's
 * name and `:build`, which no projection name can be (names are `[a-z][a-z0-9_]*`).
 */
export function buildKey(projection: string): string {
  return `${projection}${BUILD_KEY_SUFFIX}`;
}

export const BUILD_KEY_SUFFIX = ':build';

export function isBuildKey(key: string): boolean {
  return key.endsWith(BUILD_KEY_SUFFIX);
}

/** The projection a build key is of. */
export function liveNameOf(key: string): string {
  return key.slice(0, -BUILD_KEY_SUFFIX.length);
}

const buildsUnderWaySql = /* sql */ `
  select projection from ${CHECKPOINTS_TABLE} where projection = any($1::text[]) and part = 0`;

/**
 * Of these projections, those with a blue/green build under way.
 * @throws UserError when projd's tables are missing or out of date.
 */
export async function buildsUnderWay(db: Queryable, projections: readonly string[]): Promise<Set<string>> {
  try {
    const { rows } = await db.query<{ projection: string }>(buildsUnderWaySql, [projections.map(buildKey)]);
    return new Set(rows.map((row) => liveNameOf(row.projection)));
  } catch (error) {
    throw schemaMissingError(error);
  }
}

/** Every build schema's name starts so. */
export const BUILD_SCHEMA_PREFIX = 'projd_build_';

/** `projd_build_<projection>`, within PostgreSQL's 63 bytes: one build at a time per projection. */
export function buildSchemaName(projection: string): string {
  return `${BUILD_SCHEMA_PREFIX}${projection}`.slice(0, 63);
}

/** The statements that give a build an empty schema: whatever an earlier, abandoned build left goes. */
export function freshBuildSchemaSql(schema: string): string[] {
  const name = pg.escapeIdentifier(schema);
  return [`drop schema if exists ${name} cascade`, `create schema ${name}`];
}

/** What the swap moved, by name. */
export interface SwapMoves {
  /** Moved from the build schema into the live one. */
  moved: string[];
  /** Moved from the live schema out to the old tables' schema: what the new version replaced. */
  replaced: string[];
}

interface BuiltObject {
  name: string;
  /** As `alter` names it: `table`, `view`, `materialized view`, `sequence`, `foreign table`, `type`, `domain`, `routine`. */
  kind: string;
  /** How SQL names it in the build schema: `"s"."t"`, or a routine's signature. */
  built: string;
  /** The same-named object of the live schema, named the same way; null when there is none. */
  live: string | null;
}

// Relations, standalone types and routines created in the build schema, each with the
// same-named object of the live schema. Left out, because they move with what owns them:
// indexes, the sequences of serial and identity columns, row types of relations, array types.
const builtObjectsSql = /* sql */ `
  with build as (select oid from pg_namespace where nspname = $1),
       live as (select oid from pg_namespace where nspname = $2)
  select c.relname as name,
         case c.relkind when 'v' then 'view' when 'm' then 'materialized view' when 'S' then 'sequence'
                        when 'f' then 'foreign table' else 'table' end as kind,
         c.oid::regclass::text as built,
         (select l.oid::regclass::text from pg_class l
           where l.relnamespace = (select oid from live) and l.relname = c.relname) as live
    from pg_class c
   where c.relnamespace = (select oid from build)
     and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
     and not (c.relkind = 'S' and exists (
           select 1 from pg_depend d
            where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype in ('a', 'i')))
  union all
  select t.typname, case t.typtype when 'd' then 'domain' else 'type' end, t.oid::regtype::text,
         (select l.oid::regtype::text from pg_type l
           where l.typnamespace = (select oid from live) and l.typname = t.typname)
    from pg_type t
   where t.typnamespace = (select oid from build)
     and (t.typtype in ('e', 'd', 'r')
          or (t.typtype = 'c' and (select relkind from pg_class where oid = t.typrelid) = 'c'))
  union all
  select p.proname, 'routine', p.oid::regprocedure::text,
         (select l.oid::regprocedure::text from pg_proc l
           where l.pronamespace = (select oid from live) and l.proname = p.proname
             and l.proargtypes = p.proargtypes)
    from pg_proc p
   where p.pronamespace = (select oid from build)
   order by 1`;

/**
 * Moves everything built in `build` into `live`, after moving the same-named objects of
 * `live` out into `old` (created here). Indexes, constraints, triggers and the sequences of
 * serial columns go with their tables; readers that name a table unqualified find the new one
 * once the transaction commits. Run it in the swap's transaction: every step takes its
 * object's exclusive lock, and readers see the old tables or the new, never neither.
 */
export async function moveBuiltObjects(
  db: Queryable,
  schemas: { build: string; live: string; old: string },
): Promise<SwapMoves> {
  const { rows } = await db.query<BuiltObject>(builtObjectsSql, [schemas.build, schemas.live]);
  const live = pg.escapeIdentifier(schemas.live);
  const old = pg.escapeIdentifier(schemas.old);
  const replaced = rows.filter((row) => row.live !== null);
  await db.query(`create schema ${old}`);
  for (const row of replaced) await db.query(`alter ${row.kind} ${row.live} set schema ${old}`);
  for (const row of rows) await db.query(`alter ${row.kind} ${row.built} set schema ${live}`);
  return { moved: rows.map((row) => row.name), replaced: replaced.map((row) => row.name) };
}

// Objects outside `$1` that depend, normally, on an object inside it: a user's view over an
// old table, a foreign key into one, a default calling an old function. Dropping the schema
// with `cascade` would drop them too.
const outsideDependentsSql = /* sql */ `
  with inside as (select oid from pg_namespace where nspname = $1),
  referenced as (
    select 'pg_class'::regclass as classid, oid from pg_class where relnamespace = (select oid from inside)
    union all select 'pg_type'::regclass, oid from pg_type where typnamespace = (select oid from inside)
    union all select 'pg_proc'::regclass, oid from pg_proc where pronamespace = (select oid from inside)
  ),
  dependents as (
    select d.classid, d.objid, d.objsubid,
           case d.classid
             when 'pg_class'::regclass then (select relnamespace from pg_class where oid = d.objid)
             when 'pg_type'::regclass then (select typnamespace from pg_type where oid = d.objid)
             when 'pg_proc'::regclass then (select pronamespace from pg_proc where oid = d.objid)
             when 'pg_constraint'::regclass then (select connamespace from pg_constraint where oid = d.objid)
             when 'pg_rewrite'::regclass then
               (select c.relnamespace from pg_rewrite r join pg_class c on c.oid = r.ev_class where r.oid = d.objid)
             when 'pg_trigger'::regclass then
               (select c.relnamespace from pg_trigger t join pg_class c on c.oid = t.tgrelid where t.oid = d.objid)
             when 'pg_attrdef'::regclass then
               (select c.relnamespace from pg_attrdef a join pg_class c on c.oid = a.adrelid where a.oid = d.objid)
           end as namespace
      from pg_depend d
      join referenced r on r.classid = d.refclassid and r.oid = d.refobjid
     where d.deptype = 'n'
  )
  select distinct pg_describe_object(classid, objid, objsubid) as dependent
    from dependents
   where namespace is distinct from (select oid from inside)
   order by 1`;

/**
 * What outside `schema` depends on something inside it: what `drop schema … cascade` would
 * take along. Empty when the schema can go alone.
 */
export async function outsideDependents(db: Queryable, schema: string): Promise<string[]> {
  const { rows } = await db.query<{ dependent: string }>(outsideDependentsSql, [schema]);
  return rows.map((row) => row.dependent);
}

/** `projd_old_<projection>_v<version>_<random>`: where the swap puts the tables it replaced. */
export function oldTablesSchemaName(projection: string, version: number): string {
  const suffix = `_v${version}_${randomBytes(3).toString('hex')}`;
  return `projd_old_${projection}`.slice(0, 63 - suffix.length) + suffix;
}

export async function dropSchema(db: Queryable, schema: string): Promise<void> {
  await db.query(`drop schema if exists ${pg.escapeIdentifier(schema)} cascade`);
}
