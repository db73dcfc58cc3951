import { advisoryLockKey } from './names.js';
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
