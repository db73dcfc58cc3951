import os from 'node:os';
import pg from 'pg';
import { UserError, errorMessage } from '../errors.js';

/** Oldest server with `xid8` and `pg_current_snapshot()`. */
export const MIN_SERVER_VERSION_NUM = 130000;

export interface ConnectionOptions {
  url: string;
  /** Milliseconds a new connection may take to be accepted and logged in. */
  connectTimeout: number;
  /** @defaultValue `daemonApplicationName()` */
  applicationName?: string;
}

export interface PoolOptions extends ConnectionOptions {
  max: number;
}

/**
 * How a daemon's connections name themselves in `pg_stat_activity`: `projd status` reads it
 * to tell which daemon holds a projection's lock. PostgreSQL keeps 63 bytes of it. `batch`
 * names a projection's batch transaction, for its length only (see `BATCH_MARK`).
 */
export function daemonApplicationName(role: 'daemon' | 'listener' | 'cli' | 'batch' = 'daemon'): string {
  return `projd ${role} ${os.hostname()}:${process.pid}`.slice(0, 63);
}

// TCP keepalive probes start after this much silence. The system default (2 h on Linux) would
// leave a connection to a vanished host open for hours.
const KEEPALIVE_IDLE_MS = 10_000;

/**
 * How every connection projd opens is made: a connect timeout, so an unresponsive server fails
 * the attempt instead of hanging it, and TCP keepalive, so a dead peer is noticed while idle.
 */
export function connectionSettings(options: ConnectionOptions): pg.ClientConfig {
  return {
    connectionString: options.url,
    application_name: options.applicationName ?? daemonApplicationName(),
    connectionTimeoutMillis: options.connectTimeout,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_IDLE_MS,
  };
}

export function createPool(options: PoolOptions): pg.Pool {
  const { connectionTimeoutMillis, ...settings } = connectionSettings(options);
  // The connect timeout goes to each client, not to the pool: pg-pool's own would also bound
  // the wait for a free connection, which a projection may rightly spend behind others' batches.
  class TimedClient extends pg.Client {
    constructor(config?: pg.ClientConfig) {
      super({ ...config, connectionTimeoutMillis });
    }
  }
  // Pipelined: a statement is written at once, without waiting for the answers to those before
  // it. A handler that queues statements without awaiting them costs no round trip per statement.
  // Nothing that runs on the pool keeps a portal open (pg refuses cursors and `rows` in this mode).
  return new pg.Pool({ ...settings, max: options.max, Client: TimedClient, pipeline: true });
}

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable database URL)';
  }
}

/**
 * Checks that the server is reachable, accepts the credentials and is new enough.
 * Every failure here is the user's to fix, so it becomes a one-line `UserError`.
 */
export async function checkServer(pool: pg.Pool, url: string): Promise<void> {
  let versionNum: number;
  let version: string;
  try {
    const { rows } = await pool.query<{ num: string; version: string }>(
      "select current_setting('server_version_num') as num, current_setting('server_version') as version",
    );
    versionNum = Number(rows[0]!.num);
    version = rows[0]!.version;
  } catch (error) {
    // The statement itself cannot fail: whatever went wrong is reaching or logging in to the
    // server (refused, unknown host, credentials, TLS, no CONNECT privilege, no such database).
    throw connectionError(url, error);
  }
  checkServerVersion({ versionNum, version }, url);
}

/** A one-line `UserError` for a database that cannot be reached or logged in to. */
export function connectionError(url: string, error: unknown): UserError {
  return new UserError(`cannot connect to database ${redactUrl(url)}: ${connectionErrorMessage(error)}`, {
    cause: error,
  });
}

/**
 * Throws a one-line `UserError` when the server is older than `MIN_SERVER_VERSION_NUM`.
 * `versionNum` is `server_version_num` (e.g. 120015 for 12.15), `version` what the message shows.
 */
export function checkServerVersion(server: { versionNum: number; version: string }, url: string): void {
  // `!(>=)` rather than `<`: an unreadable version (NaN) is refused too.
  if (!(server.versionNum >= MIN_SERVER_VERSION_NUM)) {
    throw new UserError(
      `database ${redactUrl(url)} runs PostgreSQL ${server.version}; projd needs PostgreSQL 13 or newer (for xid8)`,
    );
  }
}

function connectionErrorMessage(error: unknown): string {
  // Node reports a refused connection to "localhost" as an AggregateError of one error per address.
  if (error instanceof AggregateError && error.errors.length > 0) return errorMessage(error.errors[0]);
  // pg's words for a connect that outlived `connectionTimeoutMillis`.
  if (errorMessage(error) === 'timeout expired') return 'no answer within database.connectTimeout';
  return errorMessage(error);
}

/** A client checked out of the pool, that knows whether its connection broke meanwhile. */
export interface CheckedOutClient {
  client: pg.PoolClient;
  /** Returns it to the pool, or discards it when its connection broke or `error` says so. */
  release(error?: Error): void;
}

/**
 * Checks a client out with an 'error' listener in place: pg emits 'error' on a checked-out
 * client whose server goes away (a restart, an admin shutdown), and with no listener that
 * ends the process. The query in flight rejects as well; this only keeps the process alive
 * and the broken connection out of the pool.
 */
export async function checkOut(pool: pg.Pool): Promise<CheckedOutClient> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (error: Error) => {
    broken = error;
  };
  client.on('error', onError);
  return {
    client,
    release(error?: Error) {
      client.off('error', onError);
      client.release(error ?? broken);
    },
  };
}
