import type pg from 'pg';
import type { Logger } from '../log.js';
import type { Projection } from '../projection/types.js';
import type { Position } from '../store/position.js';
import { errorMessage } from '../errors.js';
import { runBatch } from './runBatch.js';
import { createWakeup, delay } from './wakeup.js';

export const RUNNER_STATES = {
  starting: 'starting',
  /** Full batches: applying as fast as it can. */
  catchingUp: 'catching_up',
  /** Everything committed below the gate is applied; waiting for a wake-up. */
  live: 'live',
  /** Committed events wait behind an older transaction that is still open. */
  stalled: 'stalled',
  /** Another daemon holds this projection's lock; this one stands by to take over. */
  standby: 'standby',
  /** The store has a newer version of this projection: left to the newer daemon. */
  versionAhead: 'version_ahead',
  /** The last pass failed; retrying with backoff. */
  retrying: 'retrying',
  stopped: 'stopped',
} as const;

export type RunnerState = (typeof RUNNER_STATES)[keyof typeof RUNNER_STATES];

/** Told what the runner does, for metrics. Called synchronously; must not throw. */
export interface RunnerObserver {
  batchCommitted?(batch: { projection: string; applied: number; durationSeconds: number; to: Position | null }): void;
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
// from its upper half so that daemons failing together do not retry in step.
const RETRY_BASE_MS = 100;
const RETRY_CAP_MS = 30_000;
// While events are held back by an older open transaction, look again after 20 ms, doubling up
// to the poll interval: nothing notifies when that transaction ends.
const HELD_BACK_FIRST_MS = 20;

export function createRunner(options: RunnerOptions): Runner {
  const { projection, logger: parentLogger } = options;
  const logger = parentLogger.child({ projection: projection.name });
  const wakeup = createWakeup();
  const stopping = new AbortController();
  const { observer = {} } = options;
  let state: RunnerState = RUNNER_STATES.starting;
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

  async function run(): Promise<void> {
    let failures = 0;
    let heldBackDelay = HELD_BACK_FIRST_MS;
    while (!stopping.signal.aborted) {
      wakeup.clear();
      lastPassAt = Date.now();
      let wait = options.pollInterval;
      try {
        const started = performance.now();
        inBatch = true;
        const result = await runBatch(options).finally(() => {
          inBatch = false;
          lastPassAt = Date.now();
        });
        failures = 0;
        lastError = null;
        switch (result.kind) {
          case 'locked_elsewhere':
            setState(RUNNER_STATES.standby);
            break;
          case 'version_ahead':
            setState(RUNNER_STATES.versionAhead, { storedVersion: result.storedVersion, version: projection.version });
            break;
          case 'conflict':
            // Only a writer that ignores the lock can cause this; the batch was rolled back.
            logger.error({ expected: positionText(result.expected) }, 'checkpoint.conflict');
            wait = RETRY_BASE_MS;
            break;
          case 'done': {
            if (result.setUp) logger.info({ version: projection.version, setUp: result.setUp }, 'projection.setup');
            position = { transactionId: result.checkpoint.transactionId, position: result.checkpoint.position };
            if (result.to) {
              const durationSeconds = (performance.now() - started) / 1000;
              observer.batchCommitted?.({ projection: projection.name, applied: result.applied, durationSeconds, to: result.to });
              logger.debug(
                { applied: result.applied, to: positionText(result.to), ms: Math.round(durationSeconds * 1000) },
                'batch.applied',
              );
            }
            if (result.full) {
              setState(RUNNER_STATES.catchingUp);
              continue; // more is waiting: go again at once
            }
            if (result.heldBack) {
              setState(RUNNER_STATES.stalled);
              wait = Math.min(heldBackDelay, options.pollInterval);
              heldBackDelay *= 2;
            } else {
              heldBackDelay = HELD_BACK_FIRST_MS;
              setState(RUNNER_STATES.live);
              caughtUpOnce = true;
              markCaughtUp();
            }
            break;
          }
        }
      } catch (error) {
        if (stopping.signal.aborted) break;
        failures += 1;
        lastError = errorMessage(error);
        const backoff = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** (failures - 1));
        const retryInMs = Math.round(backoff / 2 + (Math.random() * backoff) / 2);
        setState(RUNNER_STATES.retrying);
        logger.error({ err: error, attempt: failures, retryInMs }, `batch.failed: ${errorMessage(error)}`);
        // A failing pass is not woken early by notifications: that would retry at the write rate.
        await delay(retryInMs, stopping.signal);
        continue;
      }
      if (wait > 0) await wakeup.wait(wait);
      lastPassAt = Date.now();
    }
    setState(RUNNER_STATES.stopped);
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

function positionText(position: { transactionId: bigint; position: bigint }): string {
  return `${position.transactionId}/${position.position}`;
}
