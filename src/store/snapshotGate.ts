import pg from 'pg';
import { daemonApplicationName } from './connect.js';
import { EVENTS_TABLE, SCHEMA } from './names.js';

/**
 * The snapshot gate, as SQL fragments for a statement with a `gate` CTE. Every transaction
 * below the gate has finished, except projection batches, which append no events: so the
 * events below `(era, xmin)` can no longer change. A reader takes only those, and an event
 * that commits late is never skipped.
 */

/**
 * How a projection's batch marks its transaction (`set local application_name`), so that every
 * reader's gate passes over it: a batch writes read models, never events (the insert trigger
 * refuses them while the mark is set, migration 0012). Without the mark, each batch that
 * writes would hold back every other projection, and every replay or blue/green build the live
 * ones, for as long as it runs.
 */
export const BATCH_MARK = 'projd batch';

/** A `like` pattern for the mark; no `%` or `_` in it to escape. */
export const BATCH_MARK_PATTERN = `${BATCH_MARK} %`;

/** Marks the transaction it runs in, before its first write: sent as a batch begins. */
export const MARK_BATCH_SQL = `set local application_name = ${pg.escapeLiteral(daemonApplicationName('batch'))}`;

/**
 * The oldest transaction still running, of the snapshot `snapshot`, that is not a marked
 * batch; its xmax when there is none. `pg_stat_activity` holds a 32-bit xid: a running one
 * matches the low 32 bits of exactly one running xid8. A batch it cannot see (another role's,
 * without the rights to see its `backend_xid`) is not passed over: the gate stays where
 * `pg_snapshot_xmin` would put it.
 */
const oldestUnmarkedSql = (snapshot: string) => /* sql */ `coalesce(
    (select x from pg_snapshot_xip(${snapshot}) x
      where x::text::bigint % 4294967296 not in (
              select a.backend_xid::text::bigint from pg_stat_get_activity(null) a
               where a.backend_xid is not null and a.application_name like '${BATCH_MARK_PATTERN}')
      order by x limit 1),
    pg_snapshot_xmax(${snapshot}))`;

/** The columns of the `gate` CTE: `era` and `xmin`, of the statement's own snapshot. */
export const GATE_COLUMNS = /* sql */ `${SCHEMA}.current_era() as era,
    (select ${oldestUnmarkedSql('s.snapshot')} from (select pg_current_snapshot() as snapshot) s) as xmin`;

/**
 * True when committed events wait above the gate, held back by an older open transaction.
 * ORDER BY … LIMIT 1 so the planner walks the index from the gate up; as a bare EXISTS it
 * guesses a third of the table qualifies and scans all of it.
 */
export const HELD_BACK = /* sql */ `(
    select e.position from ${EVENTS_TABLE} e
     where (e.era, e.transaction_id) >= (select era, xmin from gate)
     order by e.era, e.transaction_id
     limit 1
  ) is not null`;
