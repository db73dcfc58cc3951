import { advisoryLockKey, partLockKey } from './names.js';
import type { Part } from './part.js';
import type { Queryable } from './queryable.js';

const tryLockSql = /* sql */ `select pg_try_advisory_xact_lock($1::bigint) as locked`;

/**
 * Takes the projection's lock for the rest of the current transaction, without waiting.
 * Transaction-scoped so that projd works behind PgBouncer in transaction mode, and so that a
 * crashed daemon can never leave the lock held. False: another daemon is running this projection.
 */
export async function tryLockProjection(db: Queryable, projection: string): Promise<boolean> {
  const { rows } = await db.query<{ locked: boolean }>(tryLockSql, [advisoryLockKey('projection', projection)]);
  return rows[0]!.locked;
}

const lockSql = /* sql */ `select pg_advisory_xact_lock($1::bigint)`;

/**
 * Takes the projection's lock for the rest of the current transaction, waiting for it: the
 * batch a daemon holds it for commits or rolls back first, so what follows never lands
 * inside someone else's batch. Same key as {@link tryLockProjection}.
 */
export async function lockProjection(db: Queryable, projection: string): Promise<void> {
  await db.query(lockSql, [advisoryLockKey('projection', projection)]);
}

// Two columns, not `a and b`: SQL does not promise to evaluate both, and a lock taken by one
// side while the other failed is released by the caller's rollback either way.
const tryLockPartSql = /* sql */ `
  select pg_try_advisory_xact_lock_shared($1::bigint) as projection, pg_try_advisory_xact_lock($2::bigint) as part`;

/** What {@link tryLockPart} got: both locks, or which one someone else holds. */
export type PartLock = 'locked' | 'part_taken' | 'projection_taken';

/**
 * Takes the locks of one part of a split projection for the rest of the current transaction,
 * without waiting: the projection's lock shared, which its other parts share too, and the
 * part's own lock exclusive. Set-up, rebuild, replay and `projd failed` take the projection's
 * lock exclusively ({@link lockProjection}), so they never run inside any part's batch, nor a
 * part inside theirs. A daemon running the projection whole takes it exclusively as well.
 * `part_taken`: another daemon runs this part. `projection_taken`: the projection's lock is held
 * exclusively, for one transaction. Either way the caller rolls back, which releases the other.
 */
export async function tryLockPart(db: Queryable, projection: string, part: Part): Promise<PartLock> {
  const { rows } = await db.query<{ projection: boolean; part: boolean }>(tryLockPartSql, [
    advisoryLockKey('projection', projection),
    partLockKey(projection, part.index),
  ]);
  const locked = rows[0]!;
  if (!locked.part) return 'part_taken';
  return locked.projection ? 'locked' : 'projection_taken';
}
