import type pg from 'pg';
import { parseDuration } from '../config/duration.js';
import { OperationalError, UserError } from '../errors.js';
import { listenForProgress, type ProgressListener } from '../wait/listenForProgress.js';
import { timedOutText } from '../wait/describeWait.js';
import { parsePosition } from '../wait/parsePosition.js';
import type { ProjectionBehind } from '../wait/progressWaiters.js';

/** What to wait for: every one of `projections` has applied, or passed, the event at `position`. */
export interface WaitForTarget {
  projections: readonly string[];
  /** An event's position: what `appendEvents` returns in `positions` (the last one covers them all). */
  position: bigint | number | string;
}

export interface WaitForOptions {
  /** How long to wait: milliseconds, or a duration such as `5s`. @defaultValue `5s` */
  timeout?: number | string;
  /** Aborting it rejects the wait with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Run the wait's check as a prepared statement on the pool's connections: the server plans it
   * once per connection instead of at every wait, most of a wait's cost to it. Leave it off
   * when the pool goes through a pooler that cannot keep prepared statements. @defaultValue false
   */
  preparedStatements?: boolean;
}

export interface WaitForResult {
  position: bigint;
  projections: readonly string[];
  /** Milliseconds from the call to the notice that settled it. */
  waitedMs: number;
}

/** `waitFor` timed out: `behind` names the projections not there yet. Exit 1 in the CLI. */
export class WaitTimeoutError extends OperationalError {
  readonly position: bigint;
  readonly behind: readonly ProjectionBehind[];
  constructor(message: string, position: bigint, behind: readonly ProjectionBehind[]) {
    super(message);
    this.name = 'WaitTimeoutError';
    this.position = position;
    this.behind = behind;
  }
}

export function isWaitTimeoutError(error: unknown): error is WaitTimeoutError {
  return error instanceof Error && error.name === 'WaitTimeoutError';
}

const DEFAULT_TIMEOUT = '5s';
// The pool's listener outlives its last wait by this much, so that an application waiting
// after each write does not connect and LISTEN anew each time; `closeWaitFor` ends it at once.
const IDLE_CLOSE_MS = 10_000;
// The pool's own settings say nothing of these; the daemon's defaults.
const LISTEN_TIMEOUT_MS = 10_000;
const LISTEN_PROBE_INTERVAL_MS = 30_000;

interface PoolListener {
  opened: Promise<ProgressListener>;
  /** Calls of `waitFor` under way, counted before they wait for the listener to open. */
  users: number;
  idleTimer?: NodeJS.Timeout;
}

const listeners = new WeakMap<pg.Pool, PoolListener>();

/**
 * Resolves once every one of `projections` has applied (or passed, if it does not read its
 * type) the event at `position`: read your own writes. Rejects with a `WaitTimeoutError` at the
 * timeout, and with a `UserError` for an unknown projection or a position above the store's head.
 *
 * Waits on one pool share one LISTEN connection (opened beside the pool with its settings, so
 * the pool must reach the server directly, not through a transaction-mode pooler); each wait
 * queries once, then wakes on the daemon's progress notices. The connection closes 10 s after
 * the last wait, or at `closeWaitFor(pool)`.
 */
export async function waitFor(pool: pg.Pool, target: WaitForTarget, options: WaitForOptions = {}): Promise<WaitForResult> {
  const position = parsePosition(target.position, 'waitFor: position');
  if (target.projections.length === 0) throw new UserError('waitFor: projections is empty; name at least one');
  const timeoutMs = typeof options.timeout === 'number' ? options.timeout : parseDuration(options.timeout ?? DEFAULT_TIMEOUT, 'waitFor: timeout');
  if (!(timeoutMs >= 1 && timeoutMs < 2 ** 31)) throw new UserError(`waitFor: timeout must be from 1 to 2147483647 ms, got ${timeoutMs}`);
  if (options.preparedStatements !== undefined && typeof options.preparedStatements !== 'boolean') {
    throw new UserError(`waitFor: preparedStatements must be true or false, got ${JSON.stringify(options.preparedStatements)}`);
  }
  options.signal?.throwIfAborted();

  const entry = poolListener(pool);
  entry.users += 1;
  const outcome = await entry.opened
    .then(({ waiters }) =>
      waiters.wait({
        projections: [...new Set(target.projections)],
        position,
        timeoutMs,
        signal: options.signal,
        prepared: options.preparedStatements,
      }),
    )
    .finally(() => {
      entry.users -= 1;
      if (entry.users === 0) closeWhenIdle(pool, entry);
    });
  switch (outcome.kind) {
    case 'applied':
      return { position, projections: outcome.projections, waitedMs: outcome.waitedMs };
    case 'timed_out':
      throw new WaitTimeoutError(`waitFor: ${timedOutText(outcome, timeoutMs)}`, position, outcome.behind);
    case 'aborted':
      throw options.signal?.reason ?? new Error('waitFor: aborted');
    case 'closed':
      throw new Error(`waitFor: closed (closeWaitFor) while waiting for position ${position}`);
  }
}

/** Ends the pool's waits in progress and its LISTEN connection; the next `waitFor` opens another. */
export async function closeWaitFor(pool: pg.Pool): Promise<void> {
  const entry = listeners.get(pool);
  if (!entry) return;
  listeners.delete(pool);
  clearTimeout(entry.idleTimer);
  const listener = await entry.opened.catch(() => undefined);
  await listener?.close();
}

function poolListener(pool: pg.Pool): PoolListener {
  const existing = listeners.get(pool);
  if (existing) {
    clearTimeout(existing.idleTimer);
    return existing;
  }
  // The pool's connection settings, less what only the pool reads.
  const { max: _max, min: _min, idleTimeoutMillis: _idle, Client: _client, ...connection } = pool.options as pg.PoolConfig & { pipeline?: unknown };
  delete connection.pipeline;
  const entry: PoolListener = {
    users: 0,
    opened: listenForProgress({
      db: pool,
      url: connection,
      timeout: connection.connectionTimeoutMillis || LISTEN_TIMEOUT_MS,
      probeInterval: LISTEN_PROBE_INTERVAL_MS,
    }),
  };
  entry.opened.catch(() => {
    if (listeners.get(pool) === entry) listeners.delete(pool);
  });
  listeners.set(pool, entry);
  return entry;
}

function closeWhenIdle(pool: pg.Pool, entry: PoolListener): void {
  clearTimeout(entry.idleTimer);
  entry.idleTimer = setTimeout(() => {
    void entry.opened.then((listener) => {
      if (listeners.get(pool) !== entry || entry.users > 0) return;
      listeners.delete(pool);
      return listener.close();
    });
  }, IDLE_CLOSE_MS);
  entry.idleTimer.unref();
}
