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
