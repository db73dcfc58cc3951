import type { ProjdEvent } from '../event.js';
import type { Queryable } from './queryable.js';
import { batchScanCtes, batchScanParams, type BatchScanOptions } from './batchScan.js';
import { EVENT_COLUMNS, toEvent, type EventRow } from './eventRow.js';
import type { Position } from './position.js';
import { HELD_BACK } from './snapshotGate.js';

export type ReadBatchOptions = BatchScanOptions;

export interface Batch {
  /** The projection's events after `after`, in delivery order, at most `limit`. */
  events: ProjdEvent[];
  /**
   * Where the checkpoint may move: the last event read when the batch is full, else the last
   * event of any type below the snapshot gate, so a projection of rare events skips the
   * others once instead of rescanning them. Null when nothing new is below the gate.
   */
  scannedTo: Position | null;
  /** True when `limit` events were read: more may be waiting. */
  full: boolean;
  /** Committed events exist above the gate: an older transaction still open holds them back. */
  heldBack: boolean;
}

/**
 * One statement, so the batch, the scan's end and the held-back check share one snapshot and
 * one gate (see `batchScanCtes`). Filtering by type (and by part) happens here, not in the client.
 */
function readBatchSqlFor(split: boolean, bounded = false): string {
  const columns = `${EVENT_COLUMNS}, e.transaction_id as order_transaction_id, e.position as order_position`;
  return /* sql */ `
  with ${batchScanCtes(columns, { split, materialized: false, bounded })},
  held_back as (select ${HELD_BACK} as held_back)
  select b.position, b.era, b.transaction_id, b.stream_id, b.stream_version, b.type,
         b.data, b.metadata, b.schema_version, b.created_at,
         s.era as scan_end_era, s.transaction_id::text as scan_end_transaction_id,
         s.position::text as scan_end_position,
         h.held_back
    from held_back h
    left join scan_end s on true
    left join batch b on true
   order by b.era, b.order_transaction_id, b.order_position`;
}

/** The batch of a projection that is not split: no hash is computed. */
export const readBatchSql = readBatchSqlFor(false);

/** The batch of one part of a split projection: `$7` parts, part `$8`. */
export const readPartBatchSql = readBatchSqlFor(true);

/** As the two above, read no further than a bound (a scratch build's): the parameters after theirs. */
const boundedSql = { whole: readBatchSqlFor(false, true), part: readBatchSqlFor(true, true) };

/** An event row, or all nulls when the batch is empty; the scan's end and the gate's verdict ride along. */
type ReadBatchRow = { [K in keyof EventRow]: EventRow[K] | null } & {
  scan_end_era: number | null;
  scan_end_transaction_id: string | null;
  scan_end_position: string | null;
  held_back: boolean;
};

export async function readBatch(db: Queryable, options: ReadBatchOptions): Promise<Batch> {
  const { split, bounded, params } = batchScanParams(options);
  const sql = bounded ? boundedSql[split ? 'part' : 'whole'] : split ? readPartBatchSql : readBatchSql;
  const { rows } = await db.query<ReadBatchRow>(sql, params);
  const first = rows[0]!; // held_back always yields exactly one row to join onto
  const events: ProjdEvent[] = [];
  let last: Position | null = null;
  for (const row of rows) {
    if (row.position === null) continue; // the one row of an empty batch
    const { event, at } = toEvent(row as EventRow);
    events.push(event);
    last = at;
  }
  const full = events.length === options.limit;
  let scannedTo: Position | null = null;
  if (full && last) {
    scannedTo = last;
  } else if (first.scan_end_era !== null && first.scan_end_transaction_id !== null && first.scan_end_position !== null) {
    scannedTo = {
      era: first.scan_end_era,
      transactionId: BigInt(first.scan_end_transaction_id),
      position: BigInt(first.scan_end_position),
    };
  }
  return { events, scannedTo, full, heldBack: first.held_back };
}
