// A YAML projection's upcasters are SQL expressions over `data`; this module composes them
// into the SQL its statements run, so events are lifted where they are read, in the database.

import type { TypeUpcasters } from './upcasters.js';

/**
 * `input` (jsonb at version `from`) lifted to the current version: each step's expression
 * reads `data` from a one-row subquery over the previous one, and is cast to jsonb so that a
 * step written with json functions still hands on jsonb.
 */
export function liftedDataSql(upcasters: TypeUpcasters, from: number, input: string): string {
  let sql = input;
  for (let version = from; version < upcasters.current; version++) {
    const expression = upcasters.steps[version - upcasters.lowest] as string;
    sql = `(select (${expression})::jsonb from (select ${sql} as data) as projd_upcast_${version})`;
  }
  return sql;
}

/**
 * `projd.batch_events()` with `data` lifted and `schema_version` current, as a subquery with the
 * relation's columns in its order (those of `projd.events`), so `select *` and `e.data` read the
 * same as before. An event with no path up fails the statement through
 * `projd.schema_version_unknown` (migration 0009), which names it.
 */
export function liftedBatchEventsSql(projection: string, upcasters: ReadonlyMap<string, TypeUpcasters>): string {
  const dataCases: string[] = [];
  const versionCases: string[] = [];
  for (const [type, typeUpcasters] of upcasters) {
    const { lowest, current } = typeUpcasters;
    const isType = `e.type = ${sqlLiteral(type)}`;
    dataCases.push(`when ${isType} and e.schema_version = ${current} then e.data`);
    for (let version = lowest; version < current; version++) {
      dataCases.push(`when ${isType} and e.schema_version = ${version} then ${liftedDataSql(typeUpcasters, version, 'e.data')}`);
    }
    dataCases.push(
      `when ${isType} then projd.schema_version_unknown(${sqlLiteral(projection)}, e.type, e.schema_version, ${lowest}, ${current})`,
    );
    versionCases.push(`when ${isType} then ${current}`);
  }
  return (
    `(select e.position, e.era, e.transaction_id, e.stream_id, e.stream_version, e.type, ` +
    `case ${dataCases.join(' ')} else e.data end as data, e.metadata, ` +
    `case ${versionCases.join(' ')} else e.schema_version end as schema_version, e.created_at ` +
    `from projd.batch_events() as e)`
  );
}

/** A standard SQL string literal (standard_conforming_strings is on since PostgreSQL 9.1). */
function sqlLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}
