import { CHECKPOINTS_TABLE, FAILED_EVENTS_TABLE } from './names.js';
import { WHOLE, type Part } from './part.js';
import { positionParams, type Position } from './position.js';
import { statement, type Queryable, type StatementOptions } from './queryable.js';
import { toSelection, type Selection } from './selection.js';

export interface Checkpoint extends Position {
  /** The projection version whose handlers wrote this checkpoint. */
  version: number;
  /** Set while an `onError: stop` projection is halted on this failed event's id. */
  blockedBy: bigint | null;
  /** The events it was built reading; null when written before projd recorded it. */
  selection: Selection | null;
  /** How many parts the projection was split into when it was set up: 1 when not split. */
  parts: number;
}

interface CheckpointRow {
  version: number;
  era: number;
  transaction_id: string;
  position: string;
  blocked_by: string | null;
  selection: unknown;
  parts: number;
}

const selectCheckpointSql = /* sql */ `
  select version, era, transaction_id::text as transaction_id, position::text as position,
         blocked_by::text as blocked_by, selection, parts
    from ${CHECKPOINTS_TABLE}
   where projection = $1 and part = $2`;

/** The checkpoint of one part (part 0 when the projection is not split); null before set-up. */
export async function selectCheckpoint(
  db: Queryable,
  projection: string,
  part: number = 0,
  options: StatementOptions = {},
): Promise<Checkpoint | null> {
  const { rows } = await db.query<CheckpointRow>(statement('projd_select_checkpoint', selectCheckpointSql, [projection, part], options));
  const row = rows[0];
  if (!row) return null;
  return {
    version: row.version,
    era: row.era,
    transactionId: BigInt(row.transaction_id),
    position: BigInt(row.position),
    blockedBy: row.blocked_by === null ? null : BigInt(row.blocked_by),
    selection: toSelection(row.selection),
    parts: row.parts,
  };
}

/** A checkpoint's version and selection, as the start-up check needs them. */
export interface CheckpointSelection {
  projection: string;
  version: number;
  selection: Selection | null;
  /** How many parts it was set up with; its parts all share one version and selection. */
  parts: number;
}

const selectSelectionsSql = /* sql */ `
  select projection, version, selection, parts from ${CHECKPOINTS_TABLE} where projection = any($1::text[]) and part = 0`;

/** The version and recorded selection of each of these projections that has a checkpoint. */
export async function selectSelections(db: Queryable, projections: readonly string[]): Promise<CheckpointSelection[]> {
  const { rows } = await db.query<{ projection: string; version: number; selection: unknown; parts: number }>(
    selectSelectionsSql,
    [projections],
  );
  return rows.map((row) => ({
    projection: row.projection,
    version: row.version,
    selection: toSelection(row.selection),
    parts: row.parts,
  }));
}

const recordSelectionSql = /* sql */ `
  update ${CHECKPOINTS_TABLE} set selection = $3::jsonb
   where projection = $1 and version = $2 and selection is null`;

/**
 * Records the selection of a checkpoint that has none (written before projd recorded it), for
 * this version only. Returns false when there was nothing to record.
 */
export async function recordSelection(
  db: Queryable,
  projection: string,
  version: number,
  selection: Selection,
): Promise<boolean> {
  const { rowCount } = await db.query(recordSelectionSql, [projection, version, JSON.stringify(selection)]);
  return rowCount === 1;
}

const storeCheckpointSql = /* sql */ `
  update ${CHECKPOINTS_TABLE}
     set era = $5::integer, transaction_id = $6::xid8, position = $7::bigint, updated_at = now()
   where projection = $1 and part = $8
     and era = $2::integer and transaction_id = $3::xid8 and position = $4::bigint`;

/**
 * Moves the checkpoint from `from` to `to`, as a compare-and-swap on the value the batch read.
 * Returns false when another writer moved it meanwhile: the caller must roll back.
 */
export async function storeCheckpoint(
  db: Queryable,
  projection: string,
  from: Position,
  to: Position,
  part: number = 0,
): Promise<boolean> {
  const { rowCount } = await db.query(storeCheckpointSql, [
    projection,
    ...positionParams(from),
    ...positionParams(to),
    part,
  ]);
  return rowCount === 1;
}

// The compare-and-swap as a statement that fails when it matched no row, so that a `commit`
// sent behind it in the same pipeline rolls back instead of committing a batch whose
// checkpoint did not move. `1 / 0` is the one failure plain SQL can raise from a row count.
const moveCheckpointSql = /* sql */ `
  with moved as (
    update ${CHECKPOINTS_TABLE}
       set era = $5::integer, transaction_id = $6::xid8, position = $7::bigint, updated_at = now()
     where projection = $1 and part = $8
       and era = $2::integer and transaction_id = $3::xid8 and position = $4::bigint
    returning 1
  )
  select 1 / count(*)::integer as moved from moved`;

/** The SQLSTATE `moveCheckpoint` fails with when the checkpoint was not at `from` (division_by_zero). */
export const CHECKPOINT_MOVED_SQLSTATE = '22012';

/**
 * Moves the checkpoint from `from` to `to` like `storeCheckpoint`, but fails (with
 * {@link CHECKPOINT_MOVED_SQLSTATE}) when another writer moved it meanwhile, which aborts the
 * transaction: the caller may send its `commit` without waiting for the answer.
 */
export function moveCheckpoint(
  db: Queryable,
  projection: string,
  from: Position,
  to: Position,
  part: number = 0,
  options: StatementOptions = {},
): Promise<unknown> {
  const values = [projection, ...positionParams(from), ...positionParams(to), part];
  return db.query(statement('projd_move_checkpoint', moveCheckpointSql, values, options));
}

// Every part's row, in one statement: the parts of a projection never disagree on its version.
const resetCheckpointSql = /* sql */ `
  insert into ${CHECKPOINTS_TABLE} (projection, part, parts, version, selection)
  select $1, part, $4, $2, $3::jsonb from generate_series(0, $4 - 1) part
  on conflict (projection, part) do update
     set version = excluded.version, selection = excluded.selection, parts = excluded.parts,
         era = 0, transaction_id = '0', position = 0,
         blocked_by = null, last_error = null, last_error_at = null, updated_at = now()`;

/** The rows of parts a projection no longer has, after its number of parts went down. */
const dropExtraPartsSql = /* sql */ `delete from ${CHECKPOINTS_TABLE} where projection = $1 and part >= $2`;

const discardFailedEventsSql = /* sql */ `delete from ${FAILED_EVENTS_TABLE} where projection = $1`;

/**
 * Puts the projection at the start of the store for `version` and `selection`: first set-up, a
 * rebuild after a version change, or a replay (which keeps the version, so a daemon running it
 * goes on from the start rather than set it up again; it records the selection of the
 * handlers it replays with). A split projection gets a row for each of its `parts`, all at the
 * start, and loses the rows of parts beyond them. Its parked events go too: they describe the
 * read model being thrown away, and an event that fails again is parked again. Run it in the
 * transaction that runs `reset` and `setup`, under the projection's exclusive lock.
 */
export async function resetCheckpoint(
  db: Queryable,
  projection: string,
  version: number,
  selection: Selection,
  parts: number = 1,
): Promise<void> {
  await db.query(dropExtraPartsSql, [projection, parts]);
  await db.query(resetCheckpointSql, [projection, version, JSON.stringify(selection), parts]);
  await db.query(discardFailedEventsSql, [projection]);
}

// A halted projection (`blocked_by`) keeps the error it halted on; `projd failed` clears it.
const recordLastErrorSql = /* sql */ `
  update ${CHECKPOINTS_TABLE}
     set last_error = $2, last_error_at = now()
   where projection = $1 and part = $3 and blocked_by is null`;

/**
 * A daemon's pass failed and will be retried: recorded on the checkpoint, outside the batch
 * that rolled back, so that `projd status` shows the error and a projection being worked on.
 */
export async function recordLastError(
  db: Queryable,
  projection: string,
  message: string,
  part: Part = WHOLE,
): Promise<void> {
  await db.query(recordLastErrorSql, [projection, message, part.index]);
}

const clearLastErrorSql = /* sql */ `
  update ${CHECKPOINTS_TABLE}
     set last_error = null, last_error_at = null
   where projection = $1 and part = $2 and blocked_by is null and last_error is not null`;

/** A pass succeeded again: the error recorded before no longer holds. */
export async function clearLastError(db: Queryable, projection: string, part: Part = WHOLE): Promise<void> {
  await db.query(clearLastErrorSql, [projection, part.index]);
}
