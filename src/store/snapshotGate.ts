import { BATCH_SESSION_PATTERNS } from './connect.js';
import { EVENTS_TABLE, SCHEMA } from './names.js';

/**
 * The snapshot gate, as SQL fragments for a statement with a `gate` CTE. Every transaction
 * below the gate has finished, or is one of projd's own batches, which never append events
 * (the store's trigger refuses them), so the events below `(era, gate)` can no longer change:
 * a reader takes only those, and an event that commits late is never skipped.
 */

/**
 * The oldest transaction still open in the statement's snapshot that may append events: the
 * snapshot's xmin, but past projd's batches. Without that, every batch of every projection
 * would hold back the events committed while it runs for all the others, until it commits.
 * A batch is a transaction of a session whose `application_name` says it runs batches; those
 * ids are read once per statement (`array(…)`), and a session that cannot be seen (another
 * role's, without the right to see it) is simply not skipped: the gate only ever errs low.
 */
const GATE_XMIN = /* sql */ `(
    select coalesce(min(x), pg_snapshot_xmax(pg_current_snapshot()))
      from pg_snapshot_xip(pg_current_snapshot()) x
     where xid(x) <> all (array(
             select a.backend_xid from pg_stat_get_activity(null) a
              where a.backend_xid is not null and a.application_name like any ('${BATCH_SESSION_PATTERNS}'::text[])))
  )`;

/** The columns of the `gate` CTE: `era` and `xmin`, of the statement's own snapshot. */
export const GATE_COLUMNS = /* sql */ `${SCHEMA}.current_era() as era, ${GATE_XMIN} as xmin`;

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
