import type { Queryable } from './queryable.js';

/**
 * Arms the writers' wake-up (migration 0013): the next writer of events notifies, where until
 * now writers stayed silent while the daemon was at work. Resolves true when no writer that
 * inserted before the arming is still in flight: a read of the store in a later statement then
 * sees every event no notification will announce. False: such a writer has not ended yet, and
 * the caller looks again soon rather than sleep.
 */
export async function armWakeup(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ quiet: boolean }>('select projd.arm_wakeup() as quiet');
  return rows[0]!.quiet;
}
