import { CHECKPOINTS_TABLE } from './names.js';
import type { Queryable } from './queryable.js';

// A halted projection (`blocked_by`) keeps the error it halted on; `projd failed` clears it.
const recordLastErrorSql = /* sql */ `
  update ${CHECKPOINTS_TABLE}
     set last_error = $2, last_error_at = now()
   where projection = $1 and blocked_by is null`;

/**
 * A daemon's pass failed and will be retried: recorded on the checkpoint, outside the batch
 * that rolled back, so that `projd status` shows the error and a projection being worked on.
 */
export async function recordLastError(db: Queryable, projection: string, message: string): Promise<void> {
  await db.query(recordLastErrorSql, [projection, message]);
}

const clearLastErrorSql = /* sql */ `
  update ${CHECKPOINTS_TABLE}
     set last_error = null, last_error_at = null
   where projection = $1 and blocked_by is null and last_error is not null`;

/** A pass succeeded again: the error recorded before no longer holds. */
export async function clearLastError(db: Queryable, projection: string): Promise<void> {
  await db.query(clearLastErrorSql, [projection]);
}
