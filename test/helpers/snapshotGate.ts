import type pg from 'pg';
import { waitFor } from './waitFor.js';

/**
 * Waits until every event in the store is below the snapshot gate. Test files share one
 * server, and the gate is server-wide: a transaction another file holds open for a moment holds
 * new events back, and a read right after an append may not see them yet.
 */
export async function untilBelowGate(pool: pg.Pool): Promise<void> {
  await waitFor(
    async () => {
      const { rows } = await pool.query<{ below: boolean }>(
        `select coalesce(pg_snapshot_xmin(pg_current_snapshot()) > (select max(transaction_id) from projd.events), true) as below`,
      );
      return rows[0]!.below;
    },
    { timeoutMs: 30_000, message: "the store's events to be below the snapshot gate" },
  );
}
