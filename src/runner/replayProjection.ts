import type pg from 'pg';
import { errorMessage, OperationalError, UserError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Projection } from '../projection/types.js';
import { selectCheckpoint } from '../store/checkpoints.js';
import { countApplied, countEvents } from '../store/countEvents.js';
import { partsOfProjection } from '../store/part.js';
import { comparePositions, START, type Position } from '../store/position.js';
import { PROJECTION_STATES } from '../projectionStates.js';
import { createRunner, type RunnerOptions } from './createRunner.js';
import { resetProjection } from './resetProjection.js';
import { delay } from './wakeup.js';

/** How far a replay has come. */
export interface ReplayProgress {
  projection: string;
  /**
   * The projection's events at or below its checkpoint, whoever applied them: this process,
   * or a daemon running elsewhere that takes batches in turn with it.
   */
  done: number;
  /** The projection's events in the store, recounted as new ones arrive; never below `done`. */
  total: number;
  /** Milliseconds since the replay started, reset included. */
  elapsedMs: number;
  /** Events per second, `done` over the time elapsed. */
  rate: number;
  /** Seconds left at `rate`; null while there is no rate yet. */
  etaSeconds: number | null;
  /** True on the last report: the projection has caught up. */
  finished: boolean;
}

/** One projection's replay, once caught up. */
export interface ReplayResult {
  projection: string;
  version: number;
  /** `done` of the last report: the events the rebuilt projection has applied. */
  events: number;
  elapsedMs: number;
  rate: number;
}

/** As for the daemon's runners (see `RunnerOptions`), but for the poll interval, which is the replay's own. */
export interface ReplayProjectionOptions extends Omit<RunnerOptions, 'pollInterval' | 'observer'> {
  /** Called at the start, every `progressInterval` while it runs, and once caught up. Must not throw. */
  onProgress?: (progress: ReplayProgress) => void;
  /** Milliseconds between progress reports. @defaultValue 1000 */
  progressInterval?: number;
}

// The replay's runner has no listener, and its poll interval is also how soon it looks again
// while a daemon elsewhere holds the projection for a batch, or while events are held back:
// short, so that it takes its turn right after that batch.
const REPLAY_POLL_MS = 20;

type Outcome = { kind: 'caught_up' } | { kind: 'halted' } | { kind: 'version_ahead' };

/**
 * `projd replay` for one projection: clears it (see `resetProjection`), then runs a runner of
 * its own, as the daemon does (batches back to back while they are full, the same failure
 * handling), until a pass is neither full nor held back. A daemon running elsewhere may take
 * some of those batches, since the lock hands them out one at a time; either way the replay
 * ends once the projection has caught up.
 *
 * @throws UserError when the store holds a newer version of the projection.
 * @throws OperationalError when the reset fails, or the projection halts on a failed event
 *   (`onError: stop`).
 */
export async function replayProjection(options: ReplayProjectionOptions): Promise<ReplayResult> {
  const { pool, projection, onProgress, progressInterval = 1000 } = options;
  const logger = options.logger.child({ projection: projection.name });
  const startedAt = performance.now();

  const reset = await resetProjection(pool, projection).catch((error: unknown) => {
    logger.error({ err: error }, 'replay.failed');
    throw new OperationalError(`projection '${projection.name}': reset failed: ${errorMessage(error)}`, { cause: error });
  });
  if (reset.kind === 'version_ahead') throw versionAheadError(projection, reset.storedVersion);
  logger.info(
    reset.kind === 'reset' ? { version: projection.version, fromVersion: reset.fromVersion } : { version: projection.version },
    'replay.started',
  );

  const progress = createProgressCounter(pool, projection, startedAt);
  onProgress?.(await progress.measure(false));

  let end!: (outcome: Outcome) => void;
  const ended = new Promise<Outcome>((resolve) => (end = resolve));
  const { onProgress: _progress, progressInterval: _interval, ...runnerOptions } = options;
  // A runner per part of a split projection, as the daemon runs it; one halting halts the replay.
  const runners = partsOfProjection(projection).map((part) =>
    createRunner({
      ...runnerOptions,
      part,
      logger: runnerLogger(options.logger),
      pollInterval: REPLAY_POLL_MS,
      observer: {
        stateChanged({ to }) {
          if (to === PROJECTION_STATES.failed) end({ kind: 'halted' });
          else if (to === PROJECTION_STATES.versionAhead) end({ kind: 'version_ahead' });
        },
      },
    }),
  );
  void Promise.all(runners.map((runner) => runner.caughtUp)).then(() => end({ kind: 'caught_up' }));

  const reporting = new AbortController();
  const reports = (async () => {
    for (;;) {
      await delay(progressInterval, reporting.signal);
      if (reporting.signal.aborted) return;
      // Progress is only shown: a count that fails is left out, the replay goes on.
      const current = await progress.measure(false).catch((error: unknown) => {
        logger.warn({ err: error }, `replay.progress_failed: ${errorMessage(error)}`);
        return null;
      });
      if (current && !reporting.signal.aborted) onProgress?.(current);
    }
  })();

  let outcome: Outcome;
  for (const runner of runners) runner.start();
  try {
    outcome = await ended;
  } finally {
    await Promise.all(runners.map((runner) => runner.stop()));
    reporting.abort();
    await reports;
  }

  if (outcome.kind === 'version_ahead') {
    // Newer code rebuilt the projection while this replay ran.
    const stored = await selectCheckpoint(pool, projection.name);
    throw versionAheadError(projection, stored?.version ?? null);
  }
  if (outcome.kind === 'halted') {
    throw new OperationalError(
      `projection '${projection.name}': replay halted on a failed event (onError: stop); see projd failed list`,
    );
  }
  const last = await progress.measure(true);
  logger.info({ events: last.done, ms: Math.round(last.elapsedMs), rate: Math.round(last.rate) }, 'replay.done');
  onProgress?.(last);
  return { projection: projection.name, version: projection.version, events: last.done, elapsedMs: last.elapsedMs, rate: last.rate };
}

/**
 * The replay's runner tells its warnings and errors; its info lines (`projection.setup`, and
 * `projection.state` ending in `live → stopped` when the replay stops it) would misreport a
 * replay as a daemon's projection stopping, so they show only at `debug`.
 */
function runnerLogger(logger: Logger): Logger {
  const atInfo = logger.isLevelEnabled('info') && !logger.isLevelEnabled('debug');
  return atInfo ? logger.child({}, { level: 'warn' }) : logger;
}

/**
 * Progress by counting in the store rather than adding up this process's batches, so that it
 * stays right while a daemon elsewhere applies some of them. Both counts are incremental: each
 * reads only what is new since the last, so a report costs about what was applied meanwhile.
 */
function createProgressCounter(pool: pg.Pool, projection: Projection, startedAt: number) {
  const { eventTypes } = projection;
  let total = 0;
  let totalAfter = 0n;
  // Of a split projection, each part's checkpoint moves on its own: counted part by part.
  const counted = partsOfProjection(projection).map((part) => ({ part, done: 0, after: START as Position }));

  return {
    async measure(finished: boolean): Promise<ReplayProgress> {
      const fresh = await countEvents(pool, { eventTypes, afterPosition: totalAfter });
      total += fresh.count;
      totalAfter = fresh.lastPosition ?? totalAfter;

      for (const one of counted) {
        const { part } = one;
        let applied = await countApplied(pool, projection.name, { eventTypes, after: one.after, part });
        if (applied && comparePositions(applied.checkpoint, one.after) < 0) {
          // Cleared again meanwhile (another replay, a version rebuild): count from the start.
          applied = await countApplied(pool, projection.name, { eventTypes, after: START, part });
          one.done = 0;
        }
        if (applied) {
          one.done += applied.count;
          one.after = applied.checkpoint;
        }
      }
      const done = counted.reduce((sum, one) => sum + one.done, 0);

      // A late commit below a position already counted is missed by `total`, never by `done`.
      total = Math.max(total, done);
      const elapsedMs = performance.now() - startedAt;
      const rate = elapsedMs > 0 ? done / (elapsedMs / 1000) : 0;
      let etaSeconds: number | null = rate > 0 ? (total - done) / rate : null;
      if (finished) etaSeconds = 0;
      return { projection: projection.name, done, total, elapsedMs, rate, etaSeconds, finished };
    },
  };
}

/**
 * The projections `projd replay` names, in the order given (duplicates once), or all of them.
 * `where` names the projections folder in messages.
 * @throws UserError naming an unknown projection and listing the known ones, or when `all` finds none.
 */
export function selectProjections(
  projections: readonly Projection[],
  target: readonly string[] | { all: true },
  where: string,
): Projection[] {
  if ('all' in target) {
    if (projections.length === 0) throw new UserError(`no projections to replay in ${where}`);
    return [...projections];
  }
  const byName = new Map(projections.map((projection) => [projection.name, projection]));
  const known =
    projections.length === 0 ? `there are none in ${where}` : `known: ${projections.map((projection) => projection.name).join(', ')}`;
  const selected: Projection[] = [];
  for (const name of new Set(target)) {
    const projection = byName.get(name);
    if (!projection) throw new UserError(`unknown projection '${name}'; ${known}`);
    selected.push(projection);
  }
  return selected;
}

function versionAheadError(projection: Projection, storedVersion: number | null): UserError {
  const stored = storedVersion === null ? 'a newer version' : `version ${storedVersion}`;
  return new UserError(
    `projection '${projection.name}': the store holds ${stored}, newer than version ${projection.version} here; replay it with the newer code`,
  );
}
