import pg from 'pg';

// Best effort: the server-side statement and idle timeouts end the batch anyway, later.
const CANCEL_CONNECT_TIMEOUT_MS = 5_000;

/**
 * Cancels the statement server process `pid` is running, from a short-lived connection of its
 * own with the pool's settings. Not through the pool: every pooled connection may be busy, one
 * of them with the very statement to cancel (with `poolSize: 1`, always).
 */
export async function cancelBackend(pool: pg.Pool, pid: number): Promise<void> {
  const client = new pg.Client({ ...pool.options, connectionTimeoutMillis: CANCEL_CONNECT_TIMEOUT_MS });
  client.on('error', () => undefined); // a connection lost after the cancel is of no interest
  try {
    await client.connect();
    await client.query('select pg_cancel_backend($1)', [pid]);
  } finally {
    await client.end().catch(() => undefined);
  }
}
