import type pg from 'pg';

/** A pool or a client: anything the store's functions can send a statement to. */
export type Queryable = Pick<pg.ClientBase, 'query'>;

/** Of a statement projd runs for every batch or wait. */
export interface StatementOptions {
  /**
   * Run it as a prepared statement (`database.preparedStatements`): parsed and planned once per
   * connection, where planning it anew can cost the server more than running it. @defaultValue false
   */
  prepared?: boolean;
}

/** `text` with its `values`, named `name` when prepared, so that pg prepares it once per connection. */
export function statement(name: string, text: string, values: unknown[], { prepared = false }: StatementOptions = {}): pg.QueryConfig {
  return { name: prepared ? name : undefined, text, values };
}

/**
 * Waits for the answers to statements sent together on one connection. A failing statement
 * aborts the transaction, and those after it then fail as well (25P02): the first failure, in
 * send order, is the one thrown.
 */
export async function inOrder<T extends unknown[]>(...sent: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const settled = await Promise.allSettled(sent);
  const failed = settled.find((outcome) => outcome.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((outcome) => (outcome as PromiseFulfilledResult<unknown>).value) as T;
}
