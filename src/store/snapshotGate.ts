import { EVENTS_TABLE, SCHEMA } from './names.js';

/**
 * The snapshot gate, as SQL fragments for a statement with a `gate` CTE. Every transaction
 * below the reader's xmin has finished, so the events below `(era, xmin)` can no longer change:
 * a reader takes only those, and an event that commits late is never skipped.
 */

/** The columns of the `gate` CTE: `era` and `xmin`, of the statement's own snapshot. */
export const GATE_COLUMNS = /* sql */ `${SCHEMA}.current_era() as era, pg_snapshot_xmin(pg_current_snapshot()) as xmin`;

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
