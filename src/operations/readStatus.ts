import type { ResolvedConfig } from '../config/types.js';
import type { UserError } from '../errors.js';
import { loadProjections } from '../projection/loadProjections.js';
import type { Projection } from '../projection/types.js';
import { statusOptions } from '../settings.js';
import { readStatusReport, type ProjectionStatus } from '../status/readStatusReport.js';
import { withPool } from './withPool.js';

export interface ReadStatusOptions {
  /** Projections to report on instead of loading `config.projections.dir`. */
  projections?: Projection[];
  /**
   * Told of each file in `config.projections.dir` that cannot be loaded; the report goes on
   * without it. @defaultValue unset: such a file fails the call
   */
  onRefusedFile?: (error: UserError) => void;
}

/**
 * `projd status`: each projection's state, position and lag, read from the tables in one
 * statement; no daemon needs to run. Only loaded projections are listed: the checkpoint of a
 * projection removed from the folder (or whose file cannot be loaded) stays in
 * `projd.checkpoints` but is not reported.
 */
export async function readStatus(config: ResolvedConfig, options: ReadStatusOptions = {}): Promise<ProjectionStatus[]> {
  const { onRefusedFile } = options;
  const projections =
    options.projections ?? (await loadProjections(config.projections.dir, onRefusedFile ? { onRefusedFile } : {}));
  return withPool(config, { migrate: false, max: 1 }, async (pool) => {
    const report = await readStatusReport(pool, projections, statusOptions(config));
    return report.projections;
  });
}
