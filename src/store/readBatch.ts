import type { ProjdEvent } from '../event.js';
import { statement, type Queryable } from './queryable.js';
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

// Sorts the row of the scan's end and the verdict after every event: eras count up from 0.
const MAX_ERA = 2_147_483_647;

/**
 * One statement, so the batch, the scan's end and the held-back check share one snapshot and
 * one gate (see `batchScanCtes`). Filtering by type (and by part) happens here, not in the client.
 * Each row is an event (`EVENT_COLUMNS`), in delivery order; then one more row, its event
 * columns null, carries the scan's end and the gate's verdict. Appended rather than joined onto
 * the first event: a join needs each row numbered (a window over the batch's wide rows) and
 * sorted again, which cost more than the scan itself. Both halves come sorted by the same key,
 * so the planner merges them instead of sorting; the key itself is not sent.
 */
function readBatchSqlFor(split: boolean, bounded = false): string {
  const columns = `${EVENT_COLUMNS}, e.era as order_era, e.transaction_id as order_transaction_id, e.position as order_position`;
  const none = EVENT_COLUMN_NAMES.map(() => 'null').join(', ');
  const out = [...EVENT_COLUMN_NAMES, 'scan_end_era', 'scan_end_transaction_id', 'scan_end_position', 'held_back'];
  return /* sql */ `
  with ${batchScanCtes(columns, { split, materialized: false, bounded })}
  select ${out.map((name) => `u.${name}`).join(', ')}
    from ((select ${EVENT_COLUMN_NAMES.map((name) => `b.${name}`).join(', ')},
                  null::integer as scan_end_era, null::text as scan_end_transaction_id,
                  null::text as scan_end_position, null::boolean as held_back,
                  b.order_era, b.order_transaction_id, b.order_position
             from batch b)
          union all
          (select ${none},
                  s.era, s.transaction_id::text, s.position::text, ${HELD_BACK},
                  ${MAX_ERA}, null::xid8, null::bigint
             from (select 1) one left join scan_end s on true)) u
   order by u.order_era, u.order_transaction_id, u.order_position`;
}

/** The batch of a projection that is not split: no hash is computed. */
export const readBatchSql = readBatchSqlFor(false);

/** The batch of one part of a split projection: `$7` parts, part `$8`. */
export const readPartBatchSql = readBatchSqlFor(true);

/** As the two above, read no further than a bound (a scratch build's): the parameters after theirs. */
const boundedSql = { whole: readBatchSqlFor(false, true), part: readBatchSqlFor(true, true) };

// Where that row's scan's end and verdict sit: right after the event's columns.
const SCAN_END = EVENT_COLUMN_COUNT;
const HELD_BACK_VALUE = SCAN_END + 3;

export async function readBatch(db: Queryable, options: ReadBatchOptions): Promise<Batch> {
  const { split, bounded, params, variant } = batchScanParams(options);
  const text = bounded ? boundedSql[split ? 'part' : 'whole'] : split ? readPartBatchSql : readBatchSql;
  const read = { ...statement(`projd_read_batch_${variant}`, text, params, options), rowMode: 'array' as const };
  const { rows } = await db.query<unknown[]>(read);
  const verdict = rows.at(-1)!; // always there, sorted last
  const events: ProjdEvent[] = [];
  let last: Position | null = null;
  for (let index = 0; index < rows.length - 1; index++) {
    const { event, at } = toEvent(rows[index]!);
    events.push(event);
    last = at;
  }
  const full = events.length === options.limit;
  let scannedTo: Position | null = null;
  const [scanEndEra, scanEndTransactionId, scanEndPosition] = verdict.slice(SCAN_END, SCAN_END + 3) as [
    number | null,
    string | null,
    string | null,
  ];
  if (full && last) {
    scannedTo = last;
  } else if (scanEndEra !== null && scanEndTransactionId !== null && scanEndPosition !== null) {
    scannedTo = { era: scanEndEra, transactionId: BigInt(scanEndTransactionId), position: BigInt(scanEndPosition) };
  }
  return { events, scannedTo, full, heldBack: verdict[HELD_BACK_VALUE] as boolean };
}
