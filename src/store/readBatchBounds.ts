import { setBatchEventsExpression } from './batchEvents.js';
import { batchScanCtes, batchScanParams, type BatchScanOptions } from './batchScan.js';
import { statement, type Queryable } from './queryable.js';
import type { Position } from './position.js';
import { HELD_BACK } from './snapshotGate.js';

export type ReadBatchBoundsOptions = BatchScanOptions;

/**
 * A batch as `readBatch` would read it, without its events: where it starts and ends. Reading
 * them also points `projd.batch_events()` at them for the rest of the transaction.
 */
export interface BatchBounds {
  /** The projection's events in the batch, at most `limit`. */
  count: number;
  /** The global positions of its first and last event; null when it has none. */
  firstPosition: bigint | null;
  lastPosition: bigint | null;
  /** As `Batch.scannedTo`: the last event when full, else the scan's end below the gate. */
  scannedTo: Position | null;
  full: boolean;
  heldBack: boolean;
}

/**
 * `readBatch`'s statement with positions instead of rows: a SQL batch handler reads its events
 * in place (`projd.batch_events()`), so only the bounds cross the wire. One statement, so the
 * bounds and the gate share one snapshot, as in `readBatch`; and the same statement points
 * `projd.batch_events()` at the batch it found, which saves the batch a round trip.
 */
function readBatchBoundsSqlFor(split: boolean, part: { part: string; parts: string }, bounded = false): string {
  const text = (alias: string) =>
    `${alias}.era::text || '/' || ${alias}.transaction_id::text || '/' || ${alias}.position::text`;
  const scope = setBatchEventsExpression({
    after: `$1::integer::text || '/' || $2::xid8::text || '/' || $3::bigint::text`,
    // As `scannedTo` below; '' (no events) leaves the relation empty.
    through: `coalesce(case when c.count = $6 then ${text('l')} else ${text('s')} end, '')`,
    types: '$4::text[]',
    prefixes: '$5::text[]',
    ...part,
  });
  return /* sql */ `
  with ${batchScanCtes('e.era, e.transaction_id, e.position', { split, materialized: true, bounded })}
  select c.count,
         (select b.position from batch b order by b.era, b.transaction_id, b.position limit 1)::text as first_position,
         l.era as last_era, l.transaction_id::text as last_transaction_id, l.position::text as last_position,
         s.era as scan_end_era, s.transaction_id::text as scan_end_transaction_id,
         s.position::text as scan_end_position,
         ${HELD_BACK} as held_back,
         ${scope} as scoped
    from (select count(*)::integer as count from batch) c
    left join lateral (
      select b.era, b.transaction_id, b.position from batch b
       order by b.era desc, b.transaction_id desc, b.position desc limit 1
    ) l on true
    left join scan_end s on true`;
}

/** The bounds of a projection that is not split: no hash is computed. */
export const readBatchBoundsSql = readBatchBoundsSqlFor(false, { part: `'0'`, parts: `'1'` });

/** The bounds of one part of a split projection: `$7` parts, part `$8`. */
export const readPartBatchBoundsSql = readBatchBoundsSqlFor(true, { part: '$8::integer::text', parts: '$7::integer::text' });

/** As the two above, read no further than a bound (a scratch build's): the parameters after theirs. */
const boundedSql = {
  whole: readBatchBoundsSqlFor(false, { part: `'0'`, parts: `'1'` }, true),
  part: readBatchBoundsSqlFor(true, { part: '$8::integer::text', parts: '$7::integer::text' }, true),
};

interface BatchBoundsRow {
  count: number;
  first_position: string | null;
  last_era: number | null;
  last_transaction_id: string | null;
  last_position: string | null;
  scan_end_era: number | null;
  scan_end_transaction_id: string | null;
  scan_end_position: string | null;
  held_back: boolean;
}

export async function readBatchBounds(db: Queryable, options: ReadBatchBoundsOptions): Promise<BatchBounds> {
  const { split, bounded, params, variant } = batchScanParams(options);
  const text = bounded ? boundedSql[split ? 'part' : 'whole'] : split ? readPartBatchBoundsSql : readBatchBoundsSql;
  const { rows } = await db.query<BatchBoundsRow>(statement(`projd_read_batch_bounds_${variant}`, text, params, options));
  const row = rows[0]!;
  const full = row.count === options.limit;
  const last = positionOf(row.last_era, row.last_transaction_id, row.last_position);
  const scanEnd = positionOf(row.scan_end_era, row.scan_end_transaction_id, row.scan_end_position);
  return {
    count: row.count,
    firstPosition: row.first_position === null ? null : BigInt(row.first_position),
    lastPosition: last?.position ?? null,
    scannedTo: full ? last : scanEnd,
    full,
    heldBack: row.held_back,
  };
}

function positionOf(era: number | null, transactionId: string | null, position: string | null): Position | null {
  if (era === null || transactionId === null || position === null) return null;
  return { era, transactionId: BigInt(transactionId), position: BigInt(position) };
}
