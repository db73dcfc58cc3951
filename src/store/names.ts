import { createHash } from 'node:crypto';

/** projd's schema. Fixed for now; every identifier in SQL comes from here. */
export const SCHEMA = 'projd';
export const EVENTS_TABLE = `${SCHEMA}.events`;
export const CHECKPOINTS_TABLE = `${SCHEMA}.checkpoints`;
export const MIGRATIONS_TABLE = `${SCHEMA}.migrations`;
export const FAILED_EVENTS_TABLE = `${SCHEMA}.failed_events`;

/** The channel the events trigger notifies; the payload is always empty. */
export const EVENTS_CHANNEL = 'projd_events';

/** The channel a batch notifies as it commits a checkpoint move; the payload names the checkpoint. */
export const PROGRESS_CHANNEL = 'projd_progress';

/**
 * The 64-bit advisory-lock key of a name, as a decimal string for a `bigint` parameter.
 * Computed here rather than with `hashtext`, which is 32-bit and has changed between
 * PostgreSQL versions: every daemon, whatever its server, must agree on the key.
 */
export function advisoryLockKey(scope: 'projection' | 'part' | 'migrate' | 'wake', name: string): string {
  const digest = createHash('sha256').update(`projd:${scope}:${name}`).digest();
  return digest.readBigInt64BE(0).toString();
}

/**
 * The lock every writer of events holds shared until it ends, so that a daemon about to sleep
 * sees a writer in flight that will not notify it (migration 0013, `projd.arm_wakeup()`).
 * Written into the migration as a literal; a test checks the two agree.
 */
export const WAKE_LOCK_KEY = advisoryLockKey('wake', 'events');

/**
 * The lock key of one part of a split projection. Its parts' keys do not depend on how many
 * parts there are: two daemons that disagree on the count still exclude each other part by
 * part, and the checkpoint row, read under the lock, says which count is current.
 */
export function partLockKey(projection: string, index: number): string {
  return advisoryLockKey('part', `${projection}/${index}`);
}
