// The config as the parts it tunes take it, in one place for the daemon and the one-shot operations alike.
import type { ResolvedConfig } from './config/types.js';
import type { Projection } from './projection/types.js';

/** How a projection's batches run: the config's settings, with the module's own policy first. */
export function runnerSettings(config: ResolvedConfig, projection: Projection) {
  // A SQL batch handler reads its events in place, so its batches are larger by default.
  const configBatchSize = projection.batch ? config.projections.sqlBatchSize : config.projections.batchSize;
  return {
    batchSize: projection.batchSize ?? configBatchSize,
    pollInterval: config.projections.pollInterval,
    batchTimeout: config.projections.batchTimeout,
    onError: projection.onError ?? config.projections.onError,
    maxAttempts: projection.maxAttempts ?? config.projections.maxAttempts,
    maxTransientAttempts: config.projections.maxTransientAttempts,
    preparedStatements: config.database.preparedStatements,
    synchronousCommit: config.projections.synchronousCommit,
    stallAfter: config.health.stallAfter,
  };
}

/** How the status report reads the config, for `projd status` and `/metrics` alike. */
export function statusOptions(config: ResolvedConfig) {
  return { pollInterval: config.projections.pollInterval, stallAfter: config.health.stallAfter };
}
