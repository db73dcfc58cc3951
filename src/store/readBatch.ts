import type { ProjdEvent } from '../event.js';
import type { Queryable } from './queryable.js';
import { EVENT_COLUMNS, toEvent, type EventRow } from './eventRow.js';
import { eventTypeFilter, eventTypeMatchesSql } from './eventTypeFilter.js';
import { EVENTS_TABLE } from './names.js';
import { streamPartMatchesSql, type Part } from './part.js';
import { positionParams, type Position } from './position.js';
import { GATE_COLUMNS, HELD_BACK } from './snapshotGate.js';

export interface ReadBatchOptions {
  after: Position;
  /** The projection's handler keys: exact types, `prefix.*` patterns or `*`. */
  eventTypes: readonly string[];
  limit: number;
  /** Of a split projection, the part whose streams to read; absent or 1 part: every stream. */
  part?: Part;
}

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
 * One statement, so all three parts share one snapshot and one gate: the transactions
 * below `pg_snapshot_xmin` are all finished, so the set of events below it can no longer grow.
 * Filtering by type (and by part) happens here, not in the client. The scan's end is not
 * filtered: a part's checkpoint moves past the other parts' events as past other types'.
 */
function readBatchSqlFor(partFilter: string): string {
  return /* sql */ `
  with gate as materialized (select ${GATE_COLUMNS}),
  batch as (
    select ${EVENT_COLUMNS}, e.transaction_id as order_transaction_id, e.position as order_position
      from ${EVENTS_TABLE} e
     where (e.era, e.transaction_id, e.position) > ($1::integer, $2::xid8, $3::bigint)
       and (e.era, e.transaction_id) < (select era, xmin from gate)
       and ${eventTypeMatchesSql('e.type', '$4::text[]', '$5::text[]')}${partFilter}
     order by e.era, e.transaction_id, e.position
     limit $6
  ),
  scan_end as (
    select e.era, e.transaction_id, e.position
      from ${EVENTS_TABLE} e
     where (e.era, e.transaction_id, e.position) > ($1::integer, $2::xid8, $3::bigint)
       and (e.era, e.transaction_id) < (select era, xmin from gate)
     order by e.era desc, e.transaction_id desc, e.position desc
     limit 1
  ),
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
export const readBatchSql = readBatchSqlFor('');

/** The batch of one part of a split projection: `$7` parts, part `$8`. */
export const readPartBatchSql = readBatchSqlFor(
  `\n       and ${streamPartMatchesSql('e.stream_id', '$7::integer', '$8::integer')}`,
);

/** An event row, or all nulls when the batch is empty; the scan's end and the gate's verdict ride along. */
type ReadBatchRow = { [K in keyof EventRow]: EventRow[K] | null } & {
  scan_end_era: number | null;
  scan_end_transaction_id: string | null;
  scan_end_position: string | null;
  held_back: boolean;
};

export async function readBatch(db: Queryable, options: ReadBatchOptions): Promise<Batch> {
  const types = eventTypeFilter(options.eventTypes);
  const params = [...positionParams(options.after), types.exact, types.prefixes, options.limit];
  const { part } = options;
  const { rows } =
    part && part.count > 1
      ? await db.query<ReadBatchRow>(readPartBatchSql, [...params, part.count, part.index])
      : await db.query<ReadBatchRow>(readBatchSql, params);
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
