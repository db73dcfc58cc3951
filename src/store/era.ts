import { OperationalError } from '../errors.js';
import { CHECKPOINTS_TABLE, EVENTS_TABLE, SCHEMA, advisoryLockKey } from './names.js';
import type { Queryable } from './queryable.js';

export interface EraCheck {
  era: number;
  /** The largest transaction id stored in this era that this cluster cannot have written; null when healthy. */
  aheadBy: { stored: bigint; current: bigint } | null;
}

/**
 * A store restored into another cluster holds transaction ids this cluster has not reached:
 * no committed transaction of a healthy cluster is at or above its snapshot's xmax. Two index
 * probes (events, checkpoints).
 */
const checkEraSql = /* sql */ `
  with now as (select ${SCHEMA}.current_era() as era, pg_snapshot_xmax(pg_current_snapshot()) as xmax)
  select now.era, now.xmax::text as current,
         greatest(
           (select max(e.transaction_id) from ${EVENTS_TABLE} e where e.era = now.era),
           (select max(c.transaction_id) from ${CHECKPOINTS_TABLE} c where c.era = now.era)
         )::text as stored
    from now`;

export async function checkEra(db: Queryable): Promise<EraCheck> {
  const { rows } = await db.query<{ era: number; current: string; stored: string | null }>(checkEraSql);
  const row = rows[0]!;
  const stored = row.stored === null ? null : BigInt(row.stored);
  const current = BigInt(row.current);
  return { era: row.era, aheadBy: stored !== null && stored >= current ? { stored, current } : null };
}

/** Refuses to run on a restored store: its new events would sort behind every checkpoint. */
export async function assertEraCurrent(db: Queryable): Promise<void> {
  const { aheadBy } = await checkEra(db);
  if (aheadBy) {
    throw new OperationalError(
      `projd.events holds transaction ids up to ${aheadBy.stored}, but this PostgreSQL cluster is at ${aheadBy.current}: ` +
        'the store was restored or migrated into another cluster, and new events would sort behind every checkpoint; ' +
        'run `projd migrate --new-era` once to repair it',
    );
  }
}

/**
 * Starts a new era: everything stored, events and checkpoints alike, now sorts before anything
 * written from here on, in the order it had. Nothing is rewritten: the era leads the order key.
 * Returns the new era, or null when the store did not need it.
 */
export async function startNewEra(db: Queryable): Promise<{ from: number; to: number } | null> {
  await db.query('begin');
  try {
    await db.query('select pg_advisory_xact_lock($1::bigint)', [advisoryLockKey('migrate', SCHEMA)]);
    const { era, aheadBy } = await checkEra(db);
    if (!aheadBy) {
      await db.query('rollback');
      return null;
    }
    const next = era + 1;
    // The body is a constant: `current_era()` is immutable so that it folds into plans, and
    // redefining it invalidates the plans that folded the old one.
    await db.query(
      `create or replace function ${SCHEMA}.current_era() returns integer
       language sql immutable parallel safe as $$ select ${next} $$`,
    );
    await db.query('commit');
    return { from: era, to: next };
  } catch (error) {
    await db.query('rollback').catch(() => undefined);
    throw error;
  }
}
