import { jitteredBackoff } from '../backoff.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { classifyError, describeFailure, sqlstateOf } from '../store/classifyError.js';
import type { Failure } from '../store/failedEvents.js';
import { canApplyPerEvent } from './apply/pickForm.js';
import { BatchFailure, describeBatchRange, EventFailure, handlerCause } from './batchErrors.js';
import type { BatchResult, Park, RunBatchOptions } from './runBatch.js';

// Retry backoff after a failed pass: 100 ms doubling to a 30 s cap, each delay drawn at random
// from its upper half (see backoff()) so that daemons failing together do not retry in step.
export const RETRY_BASE_MS = 100;
/** The longest a runner waits between two attempts at a failing batch. */
export const RETRY_CAP_MS = 30_000;

/** Jittered exponential backoff: the upper half of 100 ms · 2^(attempt-1), capped at 30 s. */
function backoff(attempt: number): number {
  return Math.round(jitteredBackoff(attempt, RETRY_BASE_MS, RETRY_CAP_MS));
}

/** The event being isolated after it failed, until it succeeds or is parked. */
interface Failing {
  position: bigint;
  /** How many events of its batch came before it and are not committed yet. */
  index: number;
  /** Deterministic failures, counted against `maxAttempts`. */
  attempts: number;
  /** Transient failures with the event alone in its batch, counted against `maxTransientAttempts`. */
  transientAttempts: number;
  /** Its latest failure: what is recorded when it is parked. */
  failure: Failure;
  /** Where a batch handler first failed before the event was found, for the log and the record. */
  batchRange?: string;
}

/**
 * A batch handler failed over `count` events (those after the checkpoint): one of them, or
 * some of them together, is at fault. Narrowed down per event, or by halving.
 */
interface Suspect {
  count: number;
  perEvent: boolean;
  /** Where the batch handler first failed. */
  batchRange: string;
}

export interface IsolationOptions {
  projection: RunBatchOptions['projection'];
  batchSize: number;
  onError: 'park' | 'stop';
  maxAttempts: number;
  maxTransientAttempts: number;
  logger: Logger;
  /** An event was parked, or the projection halted on it. */
  onEventFailed?: (failure: { position: bigint; policy: 'park' | 'stop' }) => void;
}

/** How the next pass runs. */
export type PassPlan = Pick<RunBatchOptions, 'batchSize' | 'park' | 'perEvent'>;

/** After a committed pass: `halted` on a failed event, still `isolating` one, or `clear` to go on. */
export type AfterCommit = 'halted' | 'isolating' | 'clear';

export interface Isolation {
  /** True while a failure is being narrowed down to its event. */
  readonly isolating: boolean;
  nextPass(): PassPlan;
  /** A pass ran without throwing, whatever it found: the backoff starts over. */
  passed(): void;
  /** Books a committed pass. */
  committed(result: Extract<BatchResult, { kind: 'done' }>): AfterCommit;
  /** Books a failed pass; says how long to wait, and whether the runner is `retrying`. */
  failed(error: unknown): { waitMs: number; retrying: boolean };
}

/**
 * Failure isolation: which events the next pass takes, and what a failure means for them.
 * A failing event is retried alone (after committing the events before it), then parked or
 * halted on after `maxAttempts`; transient failures shrink the batch and retry with backoff.
 * A batch handler's failure is retried per event when the per-event handlers take every type
 * (that finds the event as above); otherwise the failing range is halved until one event fails
 * alone. See docs/architecture.md, "Failures".
 */
export function createIsolation(options: IsolationOptions): Isolation {
  const { logger } = options;
  const perEventFallback = canApplyPerEvent(options.projection);
  let failing: Failing | null = null;
  let suspect: Suspect | null = null;
  /** Halved after a timeout or a transient failure in a handler, doubled back after each full batch. */
  let batchSize = options.batchSize;
  /** Failed passes in a row, for the backoff; an event's own attempts count separately. */
  let failures = 0;

  /** Out of tries: the next pass parks it, or halts on it, as `onError` says. */
  function exhausted({ attempts, transientAttempts }: Failing): boolean {
    return attempts >= options.maxAttempts || transientAttempts >= options.maxTransientAttempts;
  }

  function nextPass(): PassPlan {
    if (failing) {
      // Per event where the handlers can take every event; else in the batch form, one event at a time.
      const perEvent = perEventFallback;
      // First commit the events before the failing one, so they are re-applied once at most.
      if (failing.index > 0) return { batchSize: Math.min(batchSize, failing.index), perEvent };
      if (exhausted(failing)) return { batchSize: 1, park: parkOf(failing), perEvent };
      return { batchSize: 1, perEvent }; // the failing event alone, once more
    }
    if (suspect?.perEvent) return { batchSize: suspect.count, perEvent: true };
    if (suspect) return { batchSize: Math.max(1, Math.floor(suspect.count / 2)) }; // the first half
    return { batchSize };
  }

  function parkOf({ position, failure, attempts, transientAttempts, batchRange }: Failing): Park {
    const message = batchRange === undefined ? failure.message : `${failure.message} (${batchRange})`;
    return { position, failure: { ...failure, message }, attempts: attempts + transientAttempts, policy: options.onError };
  }

  function committed(result: Extract<BatchResult, { kind: 'done' }>): AfterCommit {
    if (failing) return committedWhileFailing(failing, result);
    if (suspect) {
      suspect.count -= result.applied;
      if (suspect.count <= 0) {
        // Each part applied without the failure: it came from events only together, or it went.
        logger.info({ batchRange: suspect.batchRange }, 'batch.recovered');
        suspect = null;
      }
      return 'isolating';
    }
    if (result.full) batchSize = Math.min(options.batchSize, batchSize * 2);
    return 'clear';
  }

  function committedWhileFailing(event: Failing, result: Extract<BatchResult, { kind: 'done' }>): AfterCommit {
    if (result.parked) {
      const { id, policy } = result.parked;
      const attempts = event.attempts + event.transientAttempts;
      const details = { position: String(event.position), failedEventId: String(id), attempts, batchRange: event.batchRange };
      options.onEventFailed?.({ position: event.position, policy });
      failing = null;
      if (policy === 'stop') {
        logger.error(details, 'event.halted');
        return 'halted';
      }
      logger.warn(details, 'event.parked');
    } else if (event.index > 0) {
      // Some or all of the events before it are committed (none: the store changed under us).
      event.index = result.applied > 0 ? Math.max(0, event.index - result.applied) : 0;
    } else {
      logger.info({ position: String(event.position), attempts: event.attempts + event.transientAttempts + 1 }, 'event.recovered');
      failing = null;
    }
    return 'isolating';
  }

  function failed(error: unknown): { waitMs: number; retrying: boolean } {
    const cause = handlerCause(error);
    const kind = classifyError(cause);
    if (error instanceof EventFailure && kind === 'deterministic') return { waitMs: isolateEvent(error), retrying: false };
    if (error instanceof BatchFailure && kind === 'deterministic') return { waitMs: isolateBatch(error), retrying: false };
    if (error instanceof EventFailure && kind === 'transient') {
      narrowDown(error);
    } else if (error instanceof BatchFailure && kind === 'transient') {
      batchSize = Math.max(1, Math.floor(Math.min(batchSize, error.range.count) / 2));
      if (error.range.count === 1) failingAt(error.range.lastPosition, 0, cause).transientAttempts += 1;
    } else if (sqlstateOf(cause) === '57014') {
      batchSize = Math.max(1, Math.floor(batchSize / 2)); // timed out outside any handler
    }
    // Retried; an outage or a fault outside any handler never counts against an event.
    failures += 1;
    const waitMs = failing && exhausted(failing) ? 0 : backoff(failures);
    const at = error instanceof EventFailure ? { position: String(error.event.position) } : {};
    const range = error instanceof BatchFailure ? { batchRange: describeBatchRange(error.range) } : {};
    logger.error({ err: cause, attempt: failures, retryInMs: waitMs, ...at, ...range }, `batch.failed: ${errorMessage(cause)}`);
    return { waitMs, retrying: true };
  }

  /** The failing event, tracked from its first failure on, with its latest failure. */
  function failingAt(position: bigint, index: number, cause: unknown): Failing {
    const failure = describeFailure(cause);
    if (failing?.position !== position) {
      failing = { position, index, attempts: 0, transientAttempts: 0, failure, batchRange: suspect?.batchRange };
      suspect = null; // found
    }
    failing.failure = failure;
    return failing;
  }

  /** A deterministic failure: the event is tried alone, then parked after `maxAttempts`. */
  function isolateEvent(error: EventFailure): number {
    failures = 0;
    const event = failingAt(error.event.position, error.index, error.cause);
    event.attempts += 1;
    logger.warn(
      { position: String(error.event.position), type: error.event.type, attempt: event.attempts, err: error.cause },
      `event.failed: ${errorMessage(error.cause)}`,
    );
    if (event.index > 0 || exhausted(event)) return 0;
    return backoff(event.attempts);
  }

  /**
   * A batch handler failed deterministically: retried per event when the handlers can, else
   * halved until one event fails alone, which is then that event's failure.
   */
  function isolateBatch(error: BatchFailure): number {
    failures = 0;
    const { count, lastPosition } = error.range;
    const batchRange = suspect?.batchRange ?? failing?.batchRange ?? `batch handler failed first on ${describeBatchRange(error.range)}`;
    if (count === 1 && !perEventFallback) {
      const event = failingAt(lastPosition, 0, error.cause);
      event.batchRange ??= batchRange;
      event.attempts += 1;
      logger.warn(
        { position: String(lastPosition), attempt: event.attempts, batchRange, err: error.cause },
        `event.failed: ${errorMessage(error.cause)}`,
      );
      return exhausted(event) ? 0 : backoff(event.attempts);
    }
    suspect = { count, perEvent: perEventFallback, batchRange };
    const next = perEventFallback ? 'retrying per event' : 'halving the batch';
    logger.warn({ batchRange: describeBatchRange(error.range), err: error.cause }, `batch.failed: ${errorMessage(error.cause)}; ${next}`);
    return 0;
  }

  /**
   * A transient failure in a handler, or a timeout while one ran: the batch is retried smaller,
   * ending before that event, then down to the event alone. There, a failure that keeps
   * recurring is counted against it, so that it is parked like a deterministic one rather
   * than hold the projection forever.
   */
  function narrowDown(error: EventFailure): void {
    batchSize = Math.max(1, Math.min(Math.floor(batchSize / 2), error.index));
    if (error.batchLength === 1) failingAt(error.event.position, error.index, error.cause).transientAttempts += 1;
  }

  return {
    get isolating() {
      return failing !== null || suspect !== null;
    },
    nextPass,
    passed: () => {
      failures = 0;
    },
    committed,
    failed,
  };
}
