import type { ResolvedConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { loadProjections } from '../projection/loadProjections.js';
import type { Projection } from '../projection/types.js';
import {
  replayProjection,
  selectProjections,
  type ReplayProgress,
  type ReplayResult,
} from '../runner/replayProjection.js';
import { assertEraCurrent } from '../store/era.js';
import { runnerSettings } from '../settings.js';
import { createProgressAnnouncer } from '../runner/progressAnnouncer.js';
import { errorMessage } from '../errors.js';
import { withPool } from './withPool.js';

export type { ReplayProgress, ReplayResult };

export interface ReplayOptions {
  /** @defaultValue a logger that writes nothing */
  logger?: Logger;
  /** Projections to choose from instead of loading `config.projections.dir`. */
  projections?: Projection[];
  /** Told how far each replay has come: at its start, every `progressInterval`, and once caught up. */
  onProgress?: (progress: ReplayProgress) => void;
  /** Milliseconds between progress reports. @defaultValue 1000 */
  progressInterval?: number;
}

/**
 * `projd replay`: clears each named projection (or all) and rebuilds it from position 0, one
 * after the other, returning once each has caught up. Safe while daemons run elsewhere: they
 * go on from wherever the replay leaves the projection.
 */
export async function replayProjections(
  config: ResolvedConfig,
  target: readonly string[] | { all: true },
  options: ReplayOptions = {},
): Promise<ReplayResult[]> {
  const logger = options.logger ?? silentLogger();
  const projections = options.projections ?? (await loadProjections(config.projections.dir));
  const selected = selectProjections(projections, target, config.projections.dir);
  // Three connections: the batch in flight, the progress counts (or a progress notice) beside it, and a batch timeout's
  // cancel; a split projection has a batch in flight per part.
  const parts = Math.max(...selected.map((projection) => projection.partitions ?? 1));
  return withPool(config, { migrate: true, max: parts + 2, logger }, async (pool) => {
    await assertEraCurrent(pool); // a restored store would reset, then wait for ever behind the gate
    // Waiters hear of a replay's progress as of a daemon's.
    const announcer = createProgressAnnouncer(pool, (error) => logger.warn({ err: errorMessage(error) }, 'progress.notice_failed'));
    const results: ReplayResult[] = [];
    try {
      for (const projection of selected) {
        results.push(
          await replayProjection({
            pool,
            projection,
            ...runnerSettings(config, projection),
            logger,
            announce: announcer.announce,
            onProgress: options.onProgress,
            progressInterval: options.progressInterval,
          }),
        );
      }
    } finally {
      await announcer.settled();
    }
    return results;
  });
}
