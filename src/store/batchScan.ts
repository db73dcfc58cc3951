import { eventTypeFilter, eventTypeMatchesSql } from './eventTypeFilter.js';
import { EVENTS_TABLE } from './names.js';
import { streamPartMatchesSql, type Part } from './part.js';
import { positionParams, type Position } from './position.js';
import type { StatementOptions } from './queryable.js';
import { GATE_COLUMNS } from './snapshotGate.js';

/**
 * What both batch reads (`readBatch`, `readBatchBounds`) are asked for. Prepared (`prepared`):
 * planning the read can cost the server far more than running it on a small batch.
 */
export interface BatchScanOptions extends StatementOptions {
  after: Position;
  /** The projection's event types: exact types, `prefix.*` patterns or `*`. */
  eventTypes: readonly string[];
  limit: number;
  /** Of a split projection, the part whose streams to read; absent or 1 part: every stream. */
  part?: Part;
  /**
   * Inclusive: read nothing past this place in the delivery order, as a scratch build does to
   * stop where the live projection's checkpoint was. @defaultValue no bound but the gate
   */
  through?: Position;
}

/**
 * The CTEs both batch reads share, so that they find the same batch: `gate` (the snapshot
 * gate: the transactions below it are all finished, or are projection batches, which append no
 * events, so the set of events below it can no longer grow; see `GATE_COLUMNS`), `batch` (the
 * projection's next events below it, in delivery order, with `columns`, at most `$6`) and `scan_end` (the last event of any type below it, where the
 * checkpoint may move when the batch is not full; not filtered by part either, so a part's
 * checkpoint moves past the other parts' events as past other types').
 * `$1`–`$3`: the position after which to read; `$4`, `$5`: the type filter; `$6`: the limit;
 * for a part, `$7`: the number of parts and `$8`: the part. A whole projection reads without
 * the hash. `bounded`: the three parameters after those are the inclusive end of the scan.
 */
export function batchScanCtes(
  columns: string,
  { split, materialized, bounded = false }: { split: boolean; materialized: boolean; bounded?: boolean },
): string {
  const partFilter = split ? `\n       and ${streamPartMatchesSql('e.stream_id', '$7::integer', '$8::integer')}` : '';
  const first = split ? 9 : 7;
  const bound = bounded
    ? `\n       and (e.era, e.transaction_id, e.position) <= ($${first}::integer, $${first + 1}::xid8, $${first + 2}::bigint)`
    : '';
  return /* sql */ `gate as materialized (select ${GATE_COLUMNS}),
  batch as ${materialized ? 'materialized ' : ''}(
    select ${columns}
      from ${EVENTS_TABLE} e
     where (e.era, e.transaction_id, e.position) > ($1::integer, $2::xid8, $3::bigint)
       and (e.era, e.transaction_id) < (select era, xmin from gate)${bound}
       and ${eventTypeMatchesSql('e.type', '$4::text[]', '$5::text[]')}${partFilter}
     order by e.era, e.transaction_id, e.position
     limit $6
  ),
  scan_end as materialized (
    select e.era, e.transaction_id, e.position
      from ${EVENTS_TABLE} e
     where (e.era, e.transaction_id, e.position) > ($1::integer, $2::xid8, $3::bigint)
       and (e.era, e.transaction_id) < (select era, xmin from gate)${bound}
     order by e.era desc, e.transaction_id desc, e.position desc
     limit 1
  )`;
}

/**
 * Whether the read is of one part of a split projection, whether it has an end, and the
 * parameters of `batchScanCtes`.
 */
export function batchScanParams({ after, eventTypes, limit, part, through }: BatchScanOptions): {
  split: boolean;
  bounded: boolean;
  params: unknown[];
  /** Which of the read's four statements (whole or part, bounded or not) these options need. */
  variant: 'whole' | 'part' | 'whole_bounded' | 'part_bounded';
} {
  const types = eventTypeFilter(eventTypes);
  const params: unknown[] = [...positionParams(after), types.exact, types.prefixes, limit];
  const split = part !== undefined && part.count > 1;
  if (split) params.push(part.count, part.index);
  if (through) params.push(...positionParams(through));
  const bounded = through !== undefined;
  return { split, bounded, params, variant: `${split ? 'part' : 'whole'}${bounded ? '_bounded' : ''}` };
}
