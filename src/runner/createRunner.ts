import type pg from 'pg';
import { jitteredBackoff } from '../backoff.js';
import { PROJECTION_STATES, type RunnerState } from '../projectionStates.js';
import type { Logger } from '../log.js';
import type { Projection } from '../projection/types.js';
import { clearLastError, recordLastError } from '../store/checkpoints.js';
import { positionText, type Position } from '../store/position.js';
import { errorMessage } from '../errors.js';
import { classifyError, describeFailure, sqlstateOf } from '../store/classifyError.js';
import type { Failure } from '../store/failedEvents.js';
import { EventFailure, runBatch, type BatchResult, type RunBatchOptions } from './runBatch.js';
import { createWakeup, delay } from './wakeup.js';

export type { RunnerState };

/** Told what the runner does, for metrics. Called synchronously; must not throw. */
export interface RunnerObserver {
  batchCommitted?(batch: { projection: string; applied: number; durationSeconds: number; to: Position | null }): void;
  /** An event was parked, or the projection halted on it, after its last attempt. */
  eventFailed?(failure: { projection: string; position: bigint; policy: 'park' | 'stop' }): void;
  stateChanged?(change: { projection: string; from: RunnerState; to: RunnerState }): void;
}

/** What the runner knows right now, without asking the database. */
export interface RunnerSnapshot {
  name: string;
  version: number;
  state: RunnerState;
  /** The checkpoint this runner last committed or read; null before its first pass. */
  position: Position | null;
  /** Has it applied everything committed below the gate at least once? */
  caughtUpOnce: boolean;
  /** `Date.now()` when the loop last finished a pass or a wait: a stuck loop stops moving it. */
  lastPassAt: number;
  /** True while a batch is in flight. */
  inBatch: boolean;
  lastError: string | null;
}

export interface RunnerOptions {
  pool: pg.Pool;
  projection: Projection;
  batchSize: number;
  /** Milliseconds between passes when nothing wakes the runner. */
  pollInterval: number;
  /** Milliseconds after which a batch is cancelled and retried as a transient failure. */
  batchTimeout: number;
  /** What to do with an event that still fails after `maxAttempts` or `maxTransientAttempts`. */
  onError: 'park' | 'stop';
  maxAttempts: number;
  /** Tries at an event alone in its batch that keep failing transiently (a timeout, a conflict). */
  maxTransientAttempts: number;
  /** Run handlers' parameterised statements as prepared statements. */
  preparedStatements: boolean;
  /** Milliseconds events may wait behind an open transaction before the runner counts as `stalled`. */
  stallAfter: number;
  logger: Logger;
  observer?: RunnerObserver;
}

export interface Runner {
  readonly projection: Projection;
  readonly state: RunnerState;
  /** Starts the loop; it runs until `stop()`. */
  start(): void;
  /** Asks for a pass soon: a notification arrived or the listener reconnected. */
  wake(): void;
  /** Starts no new batch, and resolves once the batch in flight has committed or rolled back. */
  stop(): Promise<void>;
  /** Resolves the first time the projection has applied everything committed below the gate. */
  caughtUp: Promise<void>;
  snapshot(): RunnerSnapshot;
}

// Retry backoff after a failed pass: 100 ms doubling to a 30 s cap, each delay drawn at random
// from its upper half (see backoff()) so that daemons failing together do not retry in step.
const RETRY_BASE_MS = 100;
/** The longest a runner waits between two attempts at a failing batch. */
export const RETRY_CAP_MS = 30_000;
// While events are held back by an older open transaction, look again after 20 ms, doubling up
// to 100 ms: nothing notifies when that transaction ends, and a pass that finds nothing new is
// a few index lookups. A pass that moves the checkpoint starts over at 20 ms.
const HELD_BACK_FIRST_MS = 20;
const HELD_BACK_CAP_MS = 100;

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
}

/** Jittered exponential backoff: the upper half of 100 ms · 2^(attempt-1), capped at 30 s. */
function backoff(attempt: number): number {
  return Math.round(jitteredBackoff(attempt, RETRY_BASE_MS, RETRY_CAP_MS));
}

export function createRunner(options: RunnerOptions): Runner {
  const { projection, logger: parentLogger } = options;
  const logger = parentLogger.child({ projection: projection.name });
  const wakeup = createWakeup();
  const stopping = new AbortController();
  const { observer = {} } = options;
  let state: RunnerState = PROJECTION_STATES.starting;
  let loop: Promise<void> | undefined;
  let position: Position | null = null;
  let caughtUpOnce = false;
  let lastPassAt = Date.now();
  let inBatch = false;
  let lastError: string | null = null;
  let markCaughtUp!: () => void;
  const caughtUp = new Promise<void>((resolve) => (markCaughtUp = resolve));

  function setState(next: RunnerState, details: Record<string, unknown> = {}) {
    if (next === state) return;
    logger.info({ from: state, to: next, ...details }, 'projection.state');
    observer.stateChanged?.({ projection: projection.name, from: state, to: next });
    state = next;
  }

  let failing: Failing | null = null;
  /** Halved after a timeout or a transient failure in a handler, doubled back after each full batch. */
  let batchSize = options.batchSize;
  /** The checkpoint row may hold an error from a failed pass, to clear once a pass succeeds. */
  let errorRecorded = true; // a daemon that ran before may have left one

  /** Out of tries: the next pass parks it, or halts on it, as `onError` says. */
  function exhausted({ attempts, transientAttempts }: Failing): boolean {
    return attempts >= options.maxAttempts || transientAttempts >= options.maxTransientAttempts;
  }

  function nextPass(): Pick<RunBatchOptions, 'batchSize' | 'park'> {
    if (!failing) return { batchSize };
    // First commit the events before the failing one, so they are re-applied once at most.
    if (failing.index > 0) return { batchSize: Math.min(batchSize, failing.index) };
    if (exhausted(failing)) {
      const { position, failure, attempts, transientAttempts } = failing;
      const park = { position, failure, attempts: attempts + transientAttempts, policy: options.onError };
      return { batchSize: 1, park };
    }
    return { batchSize: 1 }; // the failing event alone, once more
  }

  /** Handles a successful pass; returns how long to wait before the next one. */
  function afterPass(result: BatchResult, started: number): number {
    switch (result.kind) {
      case 'locked_elsewhere':
        setState(PROJECTION_STATES.standby);
        return options.pollInterval;
      case 'version_ahead':
        if (state !== PROJECTION_STATES.versionAhead) {
          logger.error(
            { version: projection.version, storedVersion: result.storedVersion },
            `projection.version_behind: the store holds version ${result.storedVersion}, newer than ${projection.version}; this daemon leaves it alone`,
          );
        }
        setState(PROJECTION_STATES.versionAhead, { storedVersion: result.storedVersion, version: projection.version });
        return options.pollInterval;
      case 'blocked':
        setState(PROJECTION_STATES.failed, { failedEventId: String(result.failedEventId) });
        return options.pollInterval;
      case 'conflict':
        // Only a writer that ignores the lock can cause this; the batch was rolled back.
        logger.error({ expected: positionText(result.expected) }, 'checkpoint.conflict');
        return RETRY_BASE_MS;
      case 'done':
        break;
    }
    if (result.setUp) logger.info({ version: projection.version, setUp: result.setUp }, 'projection.setup');
    position = { ...result.checkpoint };
    trackHeldBack(result);
    if (result.to) {
      const durationSeconds = (performance.now() - started) / 1000;
      observer.batchCommitted?.({ projection: projection.name, applied: result.applied, durationSeconds, to: result.to });
      logger.debug(
        { applied: result.applied, to: positionText(result.to), ms: Math.round(durationSeconds * 1000) },
        'batch.applied',
      );
    }
    if (failing) {
      if (result.parked) {
        const { id, policy } = result.parked;
        const attempts = failing.attempts + failing.transientAttempts;
        const details = { position: String(failing.position), failedEventId: String(id), attempts };
        observer.eventFailed?.({ projection: projection.name, position: failing.position, policy });
        failing = null;
        if (policy === 'stop') {
          logger.error(details, 'event.halted');
          setState(PROJECTION_STATES.failed, { failedEventId: String(id) });
          return options.pollInterval;
        }
        logger.warn(details, 'event.parked');
      } else if (failing.index > 0) {
        // Some or all of the events before it are committed (none: the store changed under us).
        failing.index = result.applied > 0 ? Math.max(0, failing.index - result.applied) : 0;
      } else {
        const attempts = failing.attempts + failing.transientAttempts + 1;
        logger.info({ position: String(failing.position), attempts }, 'event.recovered');
        failing = null;
      }
      return 0;
    }
    if (result.full) {
      batchSize = Math.min(options.batchSize, batchSize * 2);
      setState(PROJECTION_STATES.catchingUp);
      return 0; // more is waiting: go again at once
    }
    if (result.heldBack) {
      setState(heldBackState());
      if (result.to) heldBackDelay = HELD_BACK_FIRST_MS; // it moved: what held it back may be gone
      const wait = Math.min(heldBackDelay, options.pollInterval);
      heldBackDelay = Math.min(heldBackDelay * 2, HELD_BACK_CAP_MS);
      return wait;
    }
    heldBackDelay = HELD_BACK_FIRST_MS;
    setState(PROJECTION_STATES.live);
    caughtUpOnce = true;
    markCaughtUp();
    return options.pollInterval;
  }

  /** Handles a failed pass; returns how long to wait before the next one. */
  function afterFailure(error: unknown): number {
    const cause = error instanceof EventFailure ? error.cause : error;
    lastError = errorMessage(cause);
    const kind = classifyError(cause);
    if (error instanceof EventFailure && kind === 'deterministic') return isolate(error);
    if (error instanceof EventFailure && kind === 'transient') {
      narrowDown(error);
    } else if (sqlstateOf(cause) === '57014') {
      batchSize = Math.max(1, Math.floor(batchSize / 2)); // timed out outside any handler
    }
    // Retried; an outage or a fault outside any handler never counts against an event.
    failures += 1;
    const retryInMs = failing && exhausted(failing) ? 0 : backoff(failures);
    setState(PROJECTION_STATES.retrying);
    const at = error instanceof EventFailure ? { position: String(error.event.position) } : {};
    logger.error({ err: cause, attempt: failures, retryInMs, ...at }, `batch.failed: ${lastError}`);
    return retryInMs;
  }

  /** The failing event, tracked from its first failure on, with its latest failure. */
  function failingEvent({ event, index, cause }: EventFailure): Failing {
    const failure = describeFailure(cause);
    if (failing?.position !== event.position) {
      failing = { position: event.position, index, attempts: 0, transientAttempts: 0, failure };
    }
    failing.failure = failure;
    return failing;
  }

  /** A deterministic failure: the event is tried alone, then parked after `maxAttempts`. */
  function isolate(error: EventFailure): number {
    failures = 0;
    const event = failingEvent(error);
    event.attempts += 1;
    logger.warn(
      { position: String(error.event.position), type: error.event.type, attempt: event.attempts, err: error.cause },
      `event.failed: ${lastError}`,
    );
    if (event.index > 0 || exhausted(event)) return 0;
    return backoff(event.attempts);
  }

  /**
   * A transient failure in a handler, or a timeout while one ran: the batch is retried smaller,
   * ending before that event, then down to the event alone. There, a failure that keeps
   * recurring is counted against it, so that it is parked like a deterministic one rather
   * than hold the projection forever.
   */
  function narrowDown(error: EventFailure): void {
    batchSize = Math.max(1, Math.min(Math.floor(batchSize / 2), error.index));
    if (error.batchLength === 1) failingEvent(error).transientAttempts += 1;
  }

  /** Leaves the error where `projd status` reads it; best effort, it is only a report. */
  async function reportError(message: string): Promise<void> {
    errorRecorded = true;
    await recordLastError(options.pool, projection.name, message).catch((error: unknown) => {
      logger.debug({ err: errorMessage(error) }, 'error.unrecorded');
    });
  }

  async function clearReportedError(): Promise<void> {
    errorRecorded = false;
    await clearLastError(options.pool, projection.name).catch((error: unknown) => {
      errorRecorded = true;
      logger.debug({ err: errorMessage(error) }, 'error.uncleared');
    });
  }

  let failures = 0;
  let heldBackDelay = HELD_BACK_FIRST_MS;

  /**
   * Since when passes have found events held back and released none: the oldest of those has
   * waited at least this long, a bound from below (it had committed, and is still behind the
   * gate). Null while nothing is held back.
   */
  let heldBackSince: number | null = null;
  function trackHeldBack(result: { heldBack: boolean; to: Position | null }): void {
    if (!result.heldBack) heldBackSince = null;
    else if (result.to !== null || heldBackSince === null) heldBackSince = Date.now();
  }

  /** `stalled` once held back past `stallAfter`; before, a commit in flight, which changes nothing. */
  function heldBackState(): RunnerState {
    if (heldBackSince !== null && Date.now() - heldBackSince > options.stallAfter) return PROJECTION_STATES.stalled;
    return state === PROJECTION_STATES.live || state === PROJECTION_STATES.catchingUp ? state : PROJECTION_STATES.catchingUp;
  }

  async function run(): Promise<void> {
    while (!stopping.signal.aborted) {
      wakeup.clear();
      lastPassAt = Date.now();
      let wait: number;
      const started = performance.now();
      inBatch = true;
      try {
        const result = await runBatch({ ...options, ...nextPass(), timeoutMs: options.batchTimeout });
        failures = 0;
        lastError = null;
        wait = afterPass(result, started);
        if (errorRecorded && result.kind === 'done' && !failing) await clearReportedError();
      } catch (error) {
        if (stopping.signal.aborted) break;
        const standingBy = state === PROJECTION_STATES.standby; // then the projection is another daemon's
        // A failing pass is not woken early by notifications: that would retry at the write rate.
        wait = afterFailure(error);
        inBatch = false;
        if (!standingBy) await reportError(lastError!);
        await delay(wait, stopping.signal);
        continue;
      } finally {
        inBatch = false;
        lastPassAt = Date.now();
      }
      if (wait > 0) await wakeup.wait(wait);
      lastPassAt = Date.now();
    }
    setState(PROJECTION_STATES.stopped);
  }

  return {
    projection,
    get state() {
      return state;
    },
    caughtUp,
    snapshot() {
      return {
        name: projection.name,
        version: projection.version,
        state,
        position,
        caughtUpOnce,
        lastPassAt,
        inBatch,
        lastError,
      };
    },
    start() {
      loop ??= run();
    },
    wake() {
      wakeup.wake();
    },
    async stop() {
      stopping.abort();
      wakeup.wake();
      await loop;
    },
  };
}
