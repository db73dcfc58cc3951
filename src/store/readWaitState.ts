import { CHECKPOINTS_TABLE, EVENTS_TABLE } from './names.js';
import type { Position } from './position.js';
import { statement, type Queryable, type StatementOptions } from './queryable.js';

/** Where one projection stands for a waiter: the checkpoint of the part that owns the event's stream. */
export interface WaitCheckpoint {
  projection: string;
  /** Null when the store has no checkpoint of that name: the projection was never run. */
  checkpoint: (Position & { part: number; parts: number }) | null;
}

export interface WaitState {
  /** The event's place in delivery order; null while it is not visible (not committed, or never). */
  target: Position | null;
  /** The highest position handed out so far, committed or not; only read when `target` is null. */
  head: bigint | null;
  /** One per projection asked about, in order. Without a target, a split projection's part 0. */
  checkpoints: WaitCheckpoint[];
}

interface WaitStateRow {
  projection: string;
  part: number | null;
  parts: number | null;
  era: number | null;
  transaction_id: string | null;
  position: string | null;
  target_era: number | null;
  target_transaction_id: string | null;
  head: string | null;
}

// The head is the identity sequence's last value, which counts appends not committed yet (an
// event above it cannot exist yet); `max(position)` where the events relation has no sequence,
// or the role may not read it (appending through the identity column needs no such right).
// A split projection's part is the one `projd.stream_part` gives the event's stream, as the
// batches read it; every part's row carries the number of parts.
const readWaitStateSql = /* sql */ `
  with target as (
    select era, transaction_id, position, stream_id from ${EVENTS_TABLE} where position = $1::bigint
  )
  select n.projection, c.part, c.parts, c.era, c.transaction_id::text as transaction_id, c.position::text as position,
         t.era as target_era, t.transaction_id::text as target_transaction_id,
         case when t.position is null then (
           select coalesce(
                    case when has_sequence_privilege(s.seq, 'usage') or has_sequence_privilege(s.seq, 'select')
                         then pg_sequence_last_value(s.seq) end,
                    (select max(e.position) from ${EVENTS_TABLE} e),
                    0)::text
             from (select pg_get_serial_sequence('${EVENTS_TABLE}', 'position')::regclass as seq) s
         ) end as head
    from unnest($2::text[]) with ordinality as n(projection, ord)
    left join target t on true
    left join ${CHECKPOINTS_TABLE} c
      on c.projection = n.projection
     and c.part = case when c.parts > 1 and t.stream_id is not null then projd.stream_part(t.stream_id, c.parts) else 0 end
   order by n.ord`;

/**
 * The event at `position` and the checkpoints that decide whether `projections` have applied
 * (or passed) it, read in one statement, so in one snapshot.
 */
export async function readWaitState(
  db: Queryable,
  position: bigint,
  projections: readonly string[],
  options: StatementOptions = {},
): Promise<WaitState> {
  // Planning it anew cost the server several times its run.
  const values = [position.toString(), projections];
  const { rows } = await db.query<WaitStateRow>(statement('projd_read_wait_state', readWaitStateSql, values, options));
  const first = rows[0];
  const target =
    first && first.target_era !== null && first.target_transaction_id !== null
      ? { era: first.target_era, transactionId: BigInt(first.target_transaction_id), position }
      : null;
  return {
    target,
    head: first?.head == null ? null : BigInt(first.head),
    checkpoints: rows.map((row) => ({
      projection: row.projection,
      checkpoint:
        row.part === null || row.parts === null || row.era === null || row.transaction_id === null || row.position === null
          ? null
          : {
              part: row.part,
              parts: row.parts,
              era: row.era,
              transactionId: BigInt(row.transaction_id),
              position: BigInt(row.position),
            },
    })),
  };
}
