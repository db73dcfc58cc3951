import type pg from 'pg';
import { handlerFor } from '../projection/handlerFor.js';
import { UserError } from '../errors.js';
import type { ProjdEvent, Projection } from '../projection/types.js';
import { resetCheckpoint, selectCheckpoint, storeCheckpoint } from '../store/checkpoints.js';
import { cancelBackend } from '../store/cancelBackend.js';
import { isStalePlan } from '../store/classifyError.js';
import { checkOut } from '../store/connect.js';
import { blockProjection, recordFailure, type Failure } from '../store/failedEvents.js';
import { tryLockProjection } from '../store/locks.js';
import type { Position } from '../store/position.js';
import { START } from '../store/position.js';
import { readBatch } from '../store/readBatch.js';
import { compareSelections, selectionOf } from '../store/selection.js';
import { selectionMovedMessage } from './checkSelections.js';
import { createHandlerDb, type HandlerDb } from './handlerDb.js';

export interface RunBatchOptions {
  pool: pg.Pool;
  projection: Projection;
  batchSize: number;
  /** Past this many milliseconds the batch is cancelled, rolled back and counted as transient. */
  timeoutMs: number;
  /** Run handlers' parameterised statements as prepared statements. */
  preparedStatements: boolean;
  /**
   * Instead of applying the next event, park it (or halt on it): it is the event at
   * `position`, which failed `attempts` times.
   */
  park?: { position: bigint; failure: Failure; attempts: number; policy: 'park' | 'stop' };
}

/** What one pass did. Expected outcomes are values; only faults are thrown. */
export type BatchResult =
  | { kind: 'locked_elsewhere' }
  /** The store holds a newer version of this projection, written by a newer daemon. */
  | { kind: 'version_ahead'; storedVersion: number }
  /** Halted (`onError: stop`) on this failed event until it is retried or skipped. */
  | { kind: 'blocked'; failedEventId: bigint }
  /** The checkpoint moved under us despite the lock: rolled back, nothing applied. */
  | { kind: 'conflict'; expected: Position }
  | {
      kind: 'done';
      /** Events handed to handlers and committed. */
      applied: number;
      /** Null when the checkpoint did not move (nothing new below the gate). */
      to: Position | null;
      /** The checkpoint after this pass, moved or not. */
      checkpoint: Position;
      full: boolean;
      heldBack: boolean;
      /** Set when this pass ran `setup`: `created` the first time, `rebuilt` after a version change. */
      setUp?: 'created' | 'rebuilt';
      /** Set when this pass parked an event, or halted the projection on it. */
      parked?: { id: bigint; position: bigint; policy: 'park' | 'stop' };
    };

/**
 * A handler failed on `event`, the `index`-th of a batch of `batchLength`, or the batch timed
 * out while it ran; the batch was rolled back. The runner decides from `cause` whether to
 * retry the batch or isolate the event.
 */
export class EventFailure extends Error {
  constructor(
    readonly event: ProjdEvent,
    readonly index: number,
    override readonly cause: unknown,
    readonly batchLength: number,
  ) {
    super(`event ${event.position} (${event.type}) failed`, { cause });
    this.name = 'EventFailure';
  }
}

/** The batch outlived its timeout. Carries query_canceled's SQLSTATE, so it is transient. */
export class BatchTimeoutError extends Error {
  readonly code = '57014';
  constructor(timeoutMs: number) {
    super(`batch cancelled after ${timeoutMs} ms (projections.batchTimeout)`);
    this.name = 'BatchTimeoutError';
  }
}

/**
 * One batch as one transaction: lock the projection, read its checkpoint, read the next
 * events through the snapshot gate, apply them, and move the checkpoint with a
 * compare-and-swap. A crash at any point leaves the whole batch or none of it.
 * No savepoints: a failing event rolls the batch back and the runner isolates it.
 */
export async function runBatch(options: RunBatchOptions): Promise<BatchResult> {
  const { pool, timeoutMs } = options;
  const { client, release } = await checkOut(pool);
  let backendPid: number | undefined;
  const deadline = createDeadline(timeoutMs, () => {
    // Cancels the statement in flight; the server-side timeouts below cover the rest.
    if (backendPid !== undefined) cancelBackend(pool, backendPid).catch(() => undefined);
  });
  let broken: Error | undefined;
  try {
    // One round trip. statement_timeout bounds each statement and the idle timeout a handler
    // stuck between statements, so a hung daemon cannot hold the projection's lock forever.
    // The server's own pid, not the client's: behind a transaction-mode pooler they differ, and
    // the server connection stays the same for the whole transaction.
    const started = (await client.query(
      `begin; set local statement_timeout = ${timeoutMs}; set local idle_in_transaction_session_timeout = ${timeoutMs};
       select pg_backend_pid() as pid`,
    )) as unknown as pg.QueryResult<{ pid: number }>[];
    backendPid = started.at(-1)?.rows[0]?.pid;
    const result = await runInTransaction(client, options, deadline);
    await client.query(result.commit ? 'commit' : 'rollback');
    return result.result;
  } catch (error) {
    if (deadline.expired) {
      broken = new BatchTimeoutError(timeoutMs); // a handler may still hold the client: never reuse it
    } else if (isStalePlan(error instanceof EventFailure ? error.cause : error)) {
      broken = error as Error; // its prepared statements are stale: a fresh connection prepares them anew
    } else {
      await client.query('rollback').catch((rollbackError: Error) => {
        broken = rollbackError; // the connection is unusable: do not return it to the pool
      });
    }
    throw deadline.expired && !(error instanceof EventFailure) ? new BatchTimeoutError(timeoutMs) : error;
  } finally {
    deadline.clear();
    release(broken);
  }
}

async function runInTransaction(
  client: pg.PoolClient,
  { projection, batchSize, park, preparedStatements }: RunBatchOptions,
  deadline: Deadline,
): Promise<{ commit: boolean; result: BatchResult }> {
  if (!(await tryLockProjection(client, projection.name))) {
    return { commit: false, result: { kind: 'locked_elsewhere' } };
  }

  let checkpoint = await selectCheckpoint(client, projection.name);
  let setUp: 'created' | 'rebuilt' | undefined;
  if (checkpoint && checkpoint.version > projection.version) {
    return { commit: false, result: { kind: 'version_ahead', storedVersion: checkpoint.version } };
  }
  const selection = selectionOf(projection);
  if (!checkpoint || checkpoint.version < projection.version) {
    // A rebuild tears down (reset) before building up (setup), so a reset that drops a
    // table and a setup that creates it again both work.
    if (checkpoint) for (const sql of projection.reset) await client.query(sql);
    for (const sql of projection.setup) await client.query(sql);
    await resetCheckpoint(client, projection.name, projection.version, selection);
    setUp = checkpoint ? 'rebuilt' : 'created';
    checkpoint = { version: projection.version, blockedBy: null, selection, ...START };
  }
  // A replay with other handlers moved the selection since this daemon started: applying on
  // with these would skip the events of types they lack. Refused, pass after pass, until restart.
  const selectionChange = compareSelections(checkpoint.selection, selection);
  if (selectionChange) throw new UserError(selectionMovedMessage(projection.name, selectionChange));
  if (checkpoint.blockedBy !== null) {
    return { commit: false, result: { kind: 'blocked', failedEventId: checkpoint.blockedBy } };
  }

  const limit = park ? 1 : batchSize;
  const batch = await readBatch(client, { after: checkpoint, eventTypes: projection.eventTypes, limit });
  const done = { kind: 'done' as const, full: batch.full, heldBack: batch.heldBack, setUp };
  if (!batch.scannedTo) {
    return { commit: setUp !== undefined, result: { ...done, applied: 0, to: null, checkpoint } };
  }

  const first = batch.events[0];
  if (park && first?.position === park.position) {
    const id = await recordFailure(client, projection.name, first.position, park.failure, park.attempts);
    if (park.policy === 'stop') {
      await blockProjection(client, projection.name, id, park.failure.message);
      return {
        commit: true,
        result: { ...done, applied: 0, to: null, checkpoint, parked: { id, position: first.position, policy: 'stop' } },
      };
    }
    if (!(await storeCheckpoint(client, projection.name, checkpoint, batch.scannedTo))) {
      return { commit: false, result: { kind: 'conflict', expected: checkpoint } };
    }
    return {
      commit: true,
      result: {
        ...done,
        applied: 0,
        to: batch.scannedTo,
        checkpoint: batch.scannedTo,
        parked: { id, position: first.position, policy: 'park' },
      },
    };
  }

  const handlerDb = createHandlerDb(client, {
    prepare: preparedStatements,
    assertUsable: () => {
      if (deadline.expired) throw new Error('the batch has timed out; this query was not sent');
    },
  });
  // One race for the whole batch: once the deadline passes, an abandoned handler's next
  // statement is refused by `db`, so the loop cannot go on behind the rolled-back batch.
  const applying = { index: 0 };
  await deadline.race(applyEvents(projection, batch.events, handlerDb, applying)).catch((error: unknown) => {
    // Timed out in a handler: the runner may blame that event when it was alone in its batch.
    // With statements in flight, the server was working on the oldest one.
    if (!(error instanceof BatchTimeoutError)) throw error;
    const index = handlerDb.pendingIndex ?? applying.index;
    throw new EventFailure(batch.events[index]!, index, error, batch.events.length);
  });

  if (!(await storeCheckpoint(client, projection.name, checkpoint, batch.scannedTo))) {
    return { commit: false, result: { kind: 'conflict', expected: checkpoint } };
  }
  return {
    commit: true,
    result: { ...done, applied: batch.events.length, to: batch.scannedTo, checkpoint: batch.scannedTo },
  };
}

/**
 * Statements unanswered at most before the next handler waits for the oldest: a handler that
 * queues without awaiting fills the pipeline this deep, and memory stays flat however big the batch.
 */
const MAX_IN_FLIGHT = 2_000;

/**
 * Applies `events` in order; `applying.index` follows the event in flight. Handlers may leave
 * statements unawaited: every statement is answered before this resolves, and the first one
 * that failed, in the order they were sent, fails its own event.
 */
async function applyEvents(
  projection: Projection,
  events: readonly ProjdEvent[],
  handlerDb: HandlerDb,
  applying: { index: number },
): Promise<void> {
  for (const [index, event] of events.entries()) {
    applying.index = index;
    handlerDb.startEvent(index);
    try {
      // readBatch only returns types the projection handles.
      await handlerFor(projection, event.type)!(event, handlerDb.db);
    } catch (error) {
      throw await blame(handlerDb, events, index, error);
    }
    // The transaction is aborted: whatever follows would fail behind that statement.
    if (handlerDb.firstFailure) break;
    if (handlerDb.inFlight > MAX_IN_FLIGHT) await handlerDb.drain(MAX_IN_FLIGHT);
  }
  const failure = await handlerDb.settle();
  if (failure) throw new EventFailure(events[failure.index]!, failure.index, failure.error, events.length);
}

/**
 * The `index`-th event's handler threw. A statement an earlier event left in flight may have
 * failed first (what the handler saw is then its knock-on, 25P02): that event is the one to blame.
 */
async function blame(handlerDb: HandlerDb, events: readonly ProjdEvent[], index: number, error: unknown) {
  const first = await handlerDb.settle();
  const knockOn = first !== undefined && first.error !== error && handlerDb.sent(error);
  if (first && (first.index < index || (first.index === index && knockOn))) {
    return new EventFailure(events[first.index]!, first.index, first.error, events.length);
  }
  return new EventFailure(events[index]!, index, error, events.length);
}

interface Deadline {
  readonly expired: boolean;
  /** Settles with `work`, or rejects once the deadline passes, whichever comes first. */
  race<T>(work: Promise<T> | T): Promise<T>;
  clear(): void;
}

function createDeadline(timeoutMs: number, onExpire: () => void): Deadline {
  let expired = false;
  let rejectExpired!: (error: Error) => void;
  const whenExpired = new Promise<never>((_, reject) => (rejectExpired = reject));
  whenExpired.catch(() => undefined); // observed through race(); never unhandled
  const timer = setTimeout(() => {
    expired = true;
    onExpire();
    rejectExpired(new BatchTimeoutError(timeoutMs));
  }, timeoutMs);
  return {
    get expired() {
      return expired;
    },
    race: (work) => Promise.race([work, whenExpired]),
    clear: () => clearTimeout(timer),
  };
}
