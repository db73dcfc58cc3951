import type { ProjdEvent } from '../projection/types.js';

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

/** The events a batch handler was given, by global position, for messages and isolation. */
export interface BatchRange {
  count: number;
  firstPosition: bigint;
  lastPosition: bigint;
}

/** `the batch of 200 events from position 1201 to 1400`. */
export function describeBatchRange({ count, firstPosition, lastPosition }: BatchRange): string {
  if (count === 1) return `the batch of 1 event at position ${firstPosition}`;
  return `the batch of ${count} events from position ${firstPosition} to ${lastPosition}`;
}

/**
 * A batch handler (SQL `batch` or `handleBatch`) failed over `range`, or the batch timed out
 * while it ran; the batch was rolled back. Which event is at fault is not known: the runner
 * finds it per event or by halving the batch.
 */
export class BatchFailure extends Error {
  constructor(
    readonly form: 'sqlBatch' | 'moduleBatch',
    readonly range: BatchRange,
    override readonly cause: unknown,
  ) {
    super(`batch handler failed on ${describeBatchRange(range)}`, { cause });
    this.name = 'BatchFailure';
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

/** What went wrong in a handler, unwrapped from the failure that says where. */
export function handlerCause(error: unknown): unknown {
  return error instanceof EventFailure || error instanceof BatchFailure ? error.cause : error;
}
