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

/** Where the writer that took the wake-up last stands: its notification comes at its commit only. */
export type FirerStatus = 'committed' | 'in progress' | 'aborted' | 'none';

/**
 * The writer that took the wake-up last and how it stands (`projd.wake_firer_status()`): `none`
 * when no writer took it yet, or it was recorded by another cluster (the store was restored
 * here); `committed` too when its status is too old to be kept, since it ended long ago.
 */
export async function readWakeFirer(db: Queryable): Promise<{ firer: string; status: FirerStatus }> {
  const { rows } = await db.query<{ firer: string; status: FirerStatus | null }>(
    'select firer::text as firer, status from projd.wake_firer_status()',
  );
  return { firer: rows[0]!.firer, status: rows[0]!.status ?? 'committed' };
}
