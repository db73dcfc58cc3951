import type pg from 'pg';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { Projection } from '../projection/types.js';
import { PROJECTION_STATES, type RunnerState } from '../projectionStates.js';
import { partLabel, WHOLE, type Part } from '../store/part.js';
import type { ProgressNotice } from '../store/progressNotice.js';
import { positionText, type Position } from '../store/position.js';
import { handlerCause } from './batchErrors.js';
import { createBuildProgress } from './buildProgress.js';
import { createErrorReport } from './errorReport.js';
import { createHeldBack } from './heldBack.js';
import { createIsolation, RETRY_BASE_MS, RETRY_CAP_MS } from './isolation.js';
import { createPrefetch } from './prefetch.js';
import { runBatch, type BatchResult, type RunBatchOptions } from './runBatch.js';
import { unbuildableCause } from './scratchBuild.js';
import { createWakeup, delay } from './wakeup.js';

export type { RunnerState };
export { RETRY_CAP_MS };

// A split projection's lock is held exclusively for one transaction at a time (a set-up, a
// reset, a failed-event retry): look again after 20 ms, doubling up to 100 ms, rather than after
// `pollInterval`, which would leave the part idle long after the others went on.
const BUSY_FIRST_MS = 20;
const BUSY_CAP_MS = 100;

// A writer that inserted before the runner armed the wake-up will not notify it: while one is in
// flight, look again after 5 ms, doubling up to 100 ms, rather than sleep until `pollInterval`.
const SILENT_WRITER_FIRST_MS = 5;
const SILENT_WRITER_CAP_MS = 100;

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
  /** Of a split projection, the part this runner works on; absent when it runs the whole projection. */
  part?: Part;
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
  /** Most events per batch (the projection's own `batchSize`, else the config's). */
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
  /** Whether a batch's commit waits for its WAL to reach the disk (`projections.synchronousCommit`). */
  synchronousCommit: boolean;
  /** Milliseconds events may wait behind an open transaction before the runner counts as `stalled`. */
  stallAfter: number;
  logger: Logger;
  observer?: RunnerObserver;
  /** Of a split projection (`partitions`), the one part this runner works on. @defaultValue the whole projection */
  part?: Part;
  /** Told, after each commit that moves the checkpoint, where it now stands: for waiters. */
  announce?: (notice: ProgressNotice) => void;
  /** See `RunBatchOptions.buildsBesideLive`: leave an older version serving while a build makes this one. */
  buildsBesideLive?: () => boolean;
  /** Told, each pass, that an older version serves and this one waits for its blue/green build. */
  onAwaitingBuild?: () => void;
  /**
   * Of a blue/green build's runner: its schema, the live projection, and what to do when the
   * build cannot go on in a schema of its own (a handler's statement names a schema). The loop
   * ends at once, and when the live projection has been swapped to this version.
   */
  build?: NonNullable<RunBatchOptions['build']> & {
    onUnbuildable: (error: Error) => void;
    onSwapped: (liveVersion: number) => void;
  };
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

/**
 * The loop of one projection, in named steps: run a batch (read, apply by form, checkpoint;
 * see `runBatch`), book its outcome (isolation of failures, held-back events), then wait
 * until the next pass is due or a notification wakes it.
 */
export function createRunner(options: RunnerOptions): Runner {
  const { projection, observer = {}, part = WHOLE } = options;
  const split = part.count > 1;
  const logger = options.logger.child({ projection: projection.name, ...(split ? { part: partLabel(part) } : {}) });
  const wakeup = createWakeup();
  const stopping = new AbortController();
  const isolation = createIsolation({
    ...options,
    logger,
    onEventFailed: ({ position, policy }) => observer.eventFailed?.({ projection: projection.name, position, policy }),
  });
  const heldBack = createHeldBack(options);
  const errorReport = createErrorReport(options.pool, projection.name, part, logger);
  const build = createBuildProgress(logger);
  const prefetch = createPrefetch();
  let state: RunnerState = PROJECTION_STATES.starting;
  let loop: Promise<void> | undefined;
  let position: Position | null = null;
  let caughtUpOnce = false;
  let lastPassAt = Date.now();
  let inBatch = false;
  let lastError: string | null = null;
  let busyDelay = BUSY_FIRST_MS;
  let silentWriterDelay = SILENT_WRITER_FIRST_MS;
  /** Arm the writers' wake-up with the next pass: the last one was not full, so this one may end in a sleep. */
  let armNext = true;
  /** Where the last pass, caught up, left the checkpoint: the next one sends its read with its opening. */
  let readFrom: Position | undefined;
  /** A build's loop ends once its build is swapped in, or cannot go on. */
  let finished = false;
  let markCaughtUp!: () => void;
  const caughtUp = new Promise<void>((resolve) => (markCaughtUp = resolve));

  function setState(next: RunnerState, details: Record<string, unknown> = {}) {
    if (next === state) return;
    logger.info({ from: state, to: next, ...details }, 'projection.state');
    observer.stateChanged?.({ projection: projection.name, from: state, to: next });
    state = next;
  }

  /** Books a pass that did not throw; returns how long to wait before the next one. */
  function afterPass(result: BatchResult, started: number): number {
    if (result.kind !== 'projection_busy') busyDelay = BUSY_FIRST_MS;
    readFrom = undefined;
    switch (result.kind) {
      case 'projection_busy': {
        const wait = Math.min(busyDelay, options.pollInterval);
        busyDelay = Math.min(busyDelay * 2, BUSY_CAP_MS);
        return wait;
      }
      case 'set_up':
        logger.info({ version: projection.version, setUp: result.setUp }, 'projection.setup');
        return 0;
      case 'locked_elsewhere':
        setState(PROJECTION_STATES.standby);
        return options.pollInterval;
      case 'awaiting_build':
        if (state !== PROJECTION_STATES.building) {
          logger.info(
            { version: projection.version, storedVersion: result.storedVersion },
            `projection.building: version ${result.storedVersion} serves while version ${projection.version} is built beside it`,
          );
        }
        setState(PROJECTION_STATES.building, { storedVersion: result.storedVersion, version: projection.version });
        options.onAwaitingBuild?.();
        return options.pollInterval;
      case 'build_swapped':
        finished = true; // the live projection runs this version now: its own runner takes over
        options.build?.onSwapped(result.liveVersion);
        return 0;
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
        return afterCommit(result, started);
    }
  }

  /** A committed batch: report it, then go on at once, wait for held-back events, or idle live. */
  function afterCommit(result: Extract<BatchResult, { kind: 'done' }>, started: number): number {
    if (result.setUp) logger.info({ version: projection.version, setUp: result.setUp }, 'projection.setup');
    armNext = !result.full;
    position = { ...result.checkpoint };
    heldBack.track(result);
    build.committed(result);
    if (result.to) reportBatch(result, started);
    const isolating = isolation.committed(result);
    if (isolating === 'halted') {
      setState(PROJECTION_STATES.failed, { failedEventId: String(result.parked!.id) });
      return options.pollInterval;
    }
    if (isolating === 'isolating') return 0;
    if (result.full) {
      setState(PROJECTION_STATES.catchingUp);
      return 0; // more is waiting: go again at once
    }
    // Caught up: the next batch is small, and this runner will most likely find the
    // checkpoint where it left it.
    readFrom = position;
    if (result.heldBack) {
      setState(heldBackState());
      return heldBack.nextDelay(options.pollInterval);
    }
    setState(PROJECTION_STATES.live);
    build.caughtUp();
    caughtUpOnce = true;
    markCaughtUp();
    return idleWait(result.quiet);
  }

  /**
   * How long a runner with nothing more to read waits: until notified (at most `pollInterval`)
   * only after a pass that armed the writers' wake-up with no silent writer in flight.
   */
  function idleWait(quiet: boolean | undefined): number {
    if (quiet === undefined) return 0; // not armed: one more pass, armed, before sleeping
    if (quiet) {
      silentWriterDelay = SILENT_WRITER_FIRST_MS;
      return options.pollInterval;
    }
    const wait = Math.min(silentWriterDelay, options.pollInterval);
    silentWriterDelay = Math.min(silentWriterDelay * 2, SILENT_WRITER_CAP_MS);
    return wait;
  }

  function reportBatch(result: Extract<BatchResult, { kind: 'done' }>, started: number): void {
    const durationSeconds = (performance.now() - started) / 1000;
    observer.batchCommitted?.({ projection: projection.name, applied: result.applied, durationSeconds, to: result.to });
    logger.debug(
      { applied: result.applied, form: result.form, to: positionText(result.to!), ms: Math.round(durationSeconds * 1000) },
      'batch.applied',
    );
  }

  /** `stalled` once held back past `stallAfter`; before, a commit in flight, which changes nothing. */
  function heldBackState(): RunnerState {
    if (heldBack.stalled) return PROJECTION_STATES.stalled;
    return state === PROJECTION_STATES.live || state === PROJECTION_STATES.catchingUp ? state : PROJECTION_STATES.catchingUp;
  }

  /** Books a failed pass; returns how long to wait before the next one. */
  function afterFailure(error: unknown): number {
    readFrom = undefined;
    lastError = errorMessage(handlerCause(error));
    const { waitMs, retrying } = isolation.failed(error);
    if (retrying) setState(PROJECTION_STATES.retrying);
    return waitMs;
  }

  async function run(): Promise<void> {
    while (!stopping.signal.aborted && !finished) {
      wakeup.clear();
      lastPassAt = Date.now();
      let wait: number;
      const started = performance.now();
      inBatch = true;
      try {
        const pass = { ...isolation.nextPass(), timeoutMs: options.batchTimeout, prefetch, arm: armNext, readFrom };
        const result = await runBatch({ ...options, ...pass });
        isolation.passed();
        lastError = null;
        wait = afterPass(result, started);
        if (result.kind === 'done' && !isolation.isolating) await errorReport.clear();
      } catch (error) {
        if (stopping.signal.aborted) break;
        const unbuildable = options.build && unbuildableCause(options.build.live, handlerCause(error));
        if (unbuildable) {
          options.build!.onUnbuildable(unbuildable);
          break;
        }
        const standingBy = state === PROJECTION_STATES.standby; // then the projection is another daemon's
        // A failing pass is not woken early by notifications: that would retry at the write rate.
        wait = afterFailure(error);
        inBatch = false;
        if (!standingBy) await errorReport.record(lastError!);
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
        ...(split ? { part } : {}),
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
      await prefetch.settled(); // a read ahead holds a pooled connection until it is answered
    },
  };
}
