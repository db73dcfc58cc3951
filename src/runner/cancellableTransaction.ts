import type pg from 'pg';
import { cancelBackend } from '../store/cancelBackend.js';
import { checkOut } from '../store/connect.js';
import { createDeadline, type Deadline } from './deadline.js';

export interface CancellableTransactionOptions {
  /** Past this many milliseconds the statement in flight is cancelled, and each statement is bounded by it. */
  timeoutMs: number;
  /** Statements sent with `begin`, such as `set local search_path = …`. */
  settings?: readonly string[];
  /** Aborting cancels the statement in flight as the deadline would. */
  signal?: AbortSignal;
}

/**
 * One transaction on a connection of its own, for work outside a runner's batches (a scratch
 * build's batches, a blue/green swap): `begin` with its settings in one round trip, then `work`,
 * which says whether to commit. Past `timeoutMs`, or when `signal` aborts, the statement in
 * flight is cancelled through the server's pid. A failure rolls back and discards the
 * connection: a handler may still hold it after a timeout.
 */
export async function inCancellableTransaction<T>(
  pool: pg.Pool,
  { timeoutMs, settings = [], signal }: CancellableTransactionOptions,
  work: (client: pg.PoolClient, deadline: Deadline) => Promise<{ result: T; commit: boolean }>,
): Promise<T> {
  const { client, release } = await checkOut(pool);
  let pid: number | undefined;
  const cancel = () => {
    if (pid !== undefined) cancelBackend(pool, pid).catch(() => undefined);
  };
  const deadline = createDeadline(timeoutMs, cancel);
  signal?.addEventListener('abort', cancel);
  let broken: Error | undefined;
  try {
    const begun = (await client.query(
      [`begin`, `set local statement_timeout = ${timeoutMs}`, ...settings, 'select pg_backend_pid() as pid'].join('; '),
    )) as unknown as pg.QueryResult<{ pid: number }>[];
    pid = begun.at(-1)?.rows[0]?.pid;
    const { result, commit } = await work(client, deadline);
    await client.query(commit ? 'commit' : 'rollback');
    return result;
  } catch (error) {
    broken = error as Error;
    await client.query('rollback').catch(() => undefined);
    throw error;
  } finally {
    deadline.clear();
    signal?.removeEventListener('abort', cancel);
    release(broken);
  }
}
