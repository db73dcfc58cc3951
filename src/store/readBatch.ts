import type { ProjdEvent } from '../event.js';
import type { Queryable } from './queryable.js';
import { batchScanCtes, batchScanParams, type BatchScanOptions } from './batchScan.js';
import { EVENT_COLUMN_COUNT, EVENT_COLUMN_NAMES, EVENT_COLUMNS, toEvent } from './eventRow.js';
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
 * Each row is an event (`EVENT_COLUMNS`), then the scan's end and the gate's verdict, which
 * only the first row carries: the others' nulls cost the client nothing to read. An empty
 * batch is that one row with the event's columns null.
 */
function readBatchSqlFor(split: boolean, bounded = false): string {
  const columns = `${EVENT_COLUMNS}, e.transaction_id as order_transaction_id, e.position as order_position,
  row_number() over (order by e.era, e.transaction_id, e.position) = 1 as is_first`;
  // The scan's end joins onto the first row only: materialized, so it runs once, not per row.
  return /* sql */ `
  with ${batchScanCtes(columns, { split, materialized: false, bounded })},
  held_back as (select ${HELD_BACK} as held_back)
  select ${EVENT_COLUMN_NAMES.map((name) => `b.${name}`).join(', ')},
         s.era, s.transaction_id::text, s.position::text,
         case when b.is_first is not false then h.held_back end
    from held_back h
    left join batch b on true
    left join scan_end s on b.is_first is not false
   order by b.era, b.order_transaction_id, b.order_position`;
}

/** The batch of a projection that is not split: no hash is computed. */
export const readBatchSql = readBatchSqlFor(false);

/** The batch of one part of a split projection: `$7` parts, part `$8`. */
export const readPartBatchSql = readBatchSqlFor(true);

/** As the two above, read no further than a bound (a scratch build's): the parameters after theirs. */
const boundedSql = { whole: readBatchSqlFor(false, true), part: readBatchSqlFor(true, true) };

// Where the first row's scan's end and verdict sit: right after the event's columns.
const SCAN_END = EVENT_COLUMN_COUNT;
const HELD_BACK_VALUE = SCAN_END + 3;

export async function readBatch(db: Queryable, options: ReadBatchOptions): Promise<Batch> {
  const { split, bounded, params } = batchScanParams(options);
  const text = bounded ? boundedSql[split ? 'part' : 'whole'] : split ? readPartBatchSql : readBatchSql;
  const { rows } = await db.query<unknown[]>({ text, values: params, rowMode: 'array' as const });
  const first = rows[0]!; // held_back always yields exactly one row to join onto
  const events: ProjdEvent[] = [];
  let last: Position | null = null;
  for (const row of rows) {
    if (row[0] === null) continue; // the one row of an empty batch
    const { event, at } = toEvent(row);
    events.push(event);
    last = at;
  }
  const full = events.length === options.limit;
  let scannedTo: Position | null = null;
  const [scanEndEra, scanEndTransactionId, scanEndPosition] = first.slice(SCAN_END, SCAN_END + 3) as [
    number | null,
    string | null,
    string | null,
  ];
  if (full && last) {
    scannedTo = last;
  } else if (scanEndEra !== null && scanEndTransactionId !== null && scanEndPosition !== null) {
    scannedTo = { era: scanEndEra, transactionId: BigInt(scanEndTransactionId), position: BigInt(scanEndPosition) };
  }
  return { events, scannedTo, full, heldBack: first[HELD_BACK_VALUE] as boolean };
}
