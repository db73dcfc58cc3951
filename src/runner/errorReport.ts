import type pg from 'pg';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { clearLastError, recordLastError } from '../store/checkpoints.js';
import type { Part } from '../store/part.js';

export interface ErrorReport {
  /** Leaves the error where `projd status` reads it; best effort, it is only a report. */
  record(message: string): Promise<void>;
  /** A pass succeeded: clears the error recorded before, when there may be one. */
  clear(): Promise<void>;
}

/** The last error of a failed pass, on the checkpoint row of the projection (or its part), outside any batch. */
export function createErrorReport(pool: pg.Pool, projection: string, part: Part, logger: Logger): ErrorReport {
  let recorded = true; // a daemon that ran before may have left one
  return {
    async record(message) {
      recorded = true;
      await recordLastError(pool, projection, message, part).catch((error: unknown) => {
        logger.debug({ err: errorMessage(error) }, 'error.unrecorded');
      });
    },
    async clear() {
      if (!recorded) return;
      recorded = false;
      await clearLastError(pool, projection, part).catch((error: unknown) => {
        recorded = true;
        logger.debug({ err: errorMessage(error) }, 'error.uncleared');
      });
    },
  };
}
