import { eventTypeFilter, eventTypeMatchesSql } from './eventTypeFilter.js';
import { CHECKPOINTS_TABLE, EVENTS_TABLE } from './names.js';
import { streamPartMatchesSql, type Part } from './part.js';
import { positionParams, type Position } from './position.js';
import type { Queryable } from './queryable.js';

export interface CountEventsOptions {
  /** The projection's handler keys: exact types, `prefix.*` patterns or `*`. */
  eventTypes: readonly string[];
  /** Count only events with a higher global position; `0n` counts them all. */
  afterPosition: bigint;
}

export interface EventCount {
  count: number;
  /** The highest position counted, to start the next count after; null when none was. */
  lastPosition: bigint | null;
}

const countEventsSql = /* sql */ `
  select count(*)::text as count, max(position)::text as last_position
    from ${EVENTS_TABLE}
   where position > $1::bigint
     and ${eventTypeMatchesSql('type', '$2::text[]', '$3::text[]')}`;

/**
 * Counts the stored events of `eventTypes` above a global position: a first call from `0n`,
 * then from the last position counted, so that each call reads only what is new. An event
 * that commits late, below a position already counted, is missed.
 */
export async function countEvents(db: Queryable, options: CountEventsOptions): Promise<EventCount> {
  const types = eventTypeFilter(options.eventTypes);
  const { rows } = await db.query<{ count: string; last_position: string | null }>(countEventsSql, [
    options.afterPosition.toString(),
    types.exact,
    types.prefixes,
  ]);
  const row = rows[0]!;
  return { count: Number(row.count), lastPosition: row.last_position === null ? null : BigInt(row.last_position) };
}

export interface CountAppliedOptions {
  /** The projection's handler keys: exact types, `prefix.*` patterns or `*`. */
  eventTypes: readonly string[];
  /** Count only events after this place in the delivery order. */
  after: Position;
  /** Of a split projection, the part whose checkpoint and streams to count; absent or 1 part: the whole. */
  part?: Part;
}

export interface AppliedCount {
  /** The projection's checkpoint as this count saw it. */
  checkpoint: Position;
  /** Events of `eventTypes` after `after`, up to and including `checkpoint`; 0 when it lies behind `after`. */
  count: number;
}

function countAppliedSqlFor(partFilter: string, partRow: string): string {
  return /* sql */ `
  select c.era, c.transaction_id::text as transaction_id, c.position::text as position,
         (select count(*)
            from ${EVENTS_TABLE} e
           where (e.era, e.transaction_id, e.position) > ($2::integer, $3::xid8, $4::bigint)
             and (e.era, e.transaction_id, e.position) <= (c.era, c.transaction_id, c.position)
             and ${eventTypeMatchesSql('e.type', '$5::text[]', '$6::text[]')}${partFilter})::text as count
    from ${CHECKPOINTS_TABLE} c
   where c.projection = $1${partRow}`;
}

const countAppliedSql = countAppliedSqlFor('', '');

/** One part's checkpoint and events: `$7` parts, part `$8`. */
const countPartAppliedSql = countAppliedSqlFor(
  `\n             and ${streamPartMatchesSql('e.stream_id', '$7::integer', '$8::integer')}`,
  ' and c.part = $8 and c.parts = $7',
);

/**
 * Reads a projection's checkpoint and counts its events between `after` and that checkpoint,
 * in one snapshot. Nothing can commit below a checkpoint any more (it only passes finished
 * transactions), so counts over consecutive ranges add up. Null when it has no checkpoint.
 */
export async function countApplied(
  db: Queryable,
  projection: string,
  options: CountAppliedOptions,
): Promise<AppliedCount | null> {
  const types = eventTypeFilter(options.eventTypes);
  const params: unknown[] = [projection, ...positionParams(options.after), types.exact, types.prefixes];
  const { part } = options;
  const split = part !== undefined && part.count > 1;
  const { rows } = await db.query<{ era: number; transaction_id: string; position: string; count: string }>(
    split ? countPartAppliedSql : countAppliedSql,
    split ? [...params, part.count, part.index] : params,
  );
  const row = rows[0];
  if (!row) return null;
  return {
    checkpoint: { era: row.era, transactionId: BigInt(row.transaction_id), position: BigInt(row.position) },
    count: Number(row.count),
  };
}
