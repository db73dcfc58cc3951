import pg from 'pg';
import { UserError, errorMessage } from '../errors.js';
import { classifyError, sqlstateOf } from './classifyError.js';

export interface ReadOnlyQueryColumn {
  name: string;
  /** A number type (integers, floats, numeric, oid), which a table aligns right. */
  numeric: boolean;
}

export interface ReadOnlyQueryResult {
  columns: ReadOnlyQueryColumn[];
  /** Each row's values as PostgreSQL prints them, as psql shows them; null for NULL. */
  rows: (string | null)[][];
  /**
   * The same rows as objects, each value as `pg` parses it: `jsonb` as JSON, booleans,
   * 32-bit numbers as numbers, 64-bit integers and `numeric` as strings, timestamps as `Date`.
   */
  objects: Record<string, unknown>[];
}

// int8, int2, int4, oid, float4, float8, numeric
const NUMERIC_TYPE_OIDS = new Set([20, 21, 23, 26, 700, 701, 1700]);

/** Keeps every value as the server's text: the table shows what psql would. */
const AS_TEXT = { getTypeParser: () => (text: string) => text };

/**
 * Runs `sql` inside `begin transaction read only` … `rollback`, with the extended protocol: one
 * statement only, so a `commit; …` cannot end the read-only transaction. An error of the
 * statement itself (syntax, an unknown table, an attempted write) is the user's to fix.
 */
export async function readOnlyQuery(client: pg.ClientBase, sql: string): Promise<ReadOnlyQueryResult> {
  await client.query('begin transaction read only');
  try {
    // queryMode is pg's own option, missing from its type definitions.
    const config = { text: sql, rowMode: 'array', types: AS_TEXT, queryMode: 'extended' } as pg.QueryArrayConfig;
    const result = await client.query<(string | null)[]>(config);
    const fields = result.fields ?? [];
    const parsers = fields.map((field) => pg.types.getTypeParser(field.dataTypeID, 'text'));
    return {
      columns: fields.map((field) => ({ name: field.name, numeric: NUMERIC_TYPE_OIDS.has(field.dataTypeID) })),
      rows: result.rows,
      objects: result.rows.map((row) =>
        Object.fromEntries(fields.map((field, i) => [field.name, row[i] === null ? null : parsers[i]!(row[i]!)])),
      ),
    };
  } catch (error) {
    if (sqlstateOf(error) !== null && classifyError(error) === 'deterministic') {
      throw new UserError(`query failed: ${errorMessage(error)}`, { cause: error });
    }
    throw error;
  } finally {
    // Nothing was written; a broken connection has nothing left to roll back.
    await client.query('rollback').catch(() => undefined);
  }
}
