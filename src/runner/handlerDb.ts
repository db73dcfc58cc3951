import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { ProjectionDb } from '../projection/types.js';

/**
 * Distinct handler statements prepared at most, per process: SQL built with literals instead of
 * parameters would otherwise prepare a new statement on the server for every event.
 */
const MAX_PREPARED_STATEMENTS = 500;
const statementNames = new Map<string, string>();

/**
 * The name a parameterised handler statement is prepared under, from its text: a handler
 * runs the same few statements for every event, and a prepared statement skips parsing and
 * planning them each time (1.6× the upserts per second on a 2-core machine). pg prepares it
 * once per connection. Undefined past the cap: the statement then runs unnamed.
 */
function statementName(text: string): string | undefined {
  let name = statementNames.get(text);
  if (name === undefined && statementNames.size < MAX_PREPARED_STATEMENTS) {
    name = `projd_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
    statementNames.set(text, name);
  }
  return name;
}

export interface HandlerDbOptions {
  /** Prepare parameterised statements (off behind a pooler that cannot keep them). */
  prepare: boolean;
  /** Checked before each statement: a handler abandoned by a timeout must not reach the connection. */
  assertUsable?: () => void;
}

/** The transaction as a handler sees it: statements only, no release, no end. */
export function createHandlerDb(client: pg.ClientBase, { prepare, assertUsable }: HandlerDbOptions): ProjectionDb {
  return {
    async query<Row>(text: string, values?: readonly unknown[]) {
      assertUsable?.();
      const name = prepare && values !== undefined && values.length > 0 ? statementName(text) : undefined;
      const result =
        name === undefined
          ? await client.query(text, values as unknown[] | undefined)
          : await client.query({ name, text, values: values as unknown[] });
      return { rows: result.rows as Row[], rowCount: result.rowCount };
    },
  };
}
