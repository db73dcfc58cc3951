import { CHECKPOINTS_TABLE, FAILED_EVENTS_TABLE } from './names.js';
import { positionParams, type Position } from './position.js';
import type { Queryable } from './queryable.js';
import { toSelection, type Selection } from './selection.js';

export interface Checkpoint extends Position {
  /** The projection version whose handlers wrote this checkpoint. */
  version: number;
  /** Set while an `onError: stop` projection is halted on this failed event's id. */
  blockedBy: bigint | null;
  /** The events it was built reading; null when written before projd recorded it. */
  selection: Selection | null;
}

interface CheckpointRow {
  version: number;
  era: number;
  transaction_id: string;
  position: string;
  blocked_by: string | null;
  selection: unknown;
}

const selectCheckpointSql = /* sql */ `
  select version, era, transaction_id::text as transaction_id, position::text as position,
         blocked_by::text as blocked_by, selection
    from ${CHECKPOINTS_TABLE}
   where projection = $1`;

export async function selectCheckpoint(db: Queryable, projection: string): Promise<Checkpoint | null> {
  const { rows } = await db.query<CheckpointRow>(selectCheckpointSql, [projection]);
  const row = rows[0];
  if (!row) return null;
  return {
    version: row.version,
    era: row.era,
    transactionId: BigInt(row.transaction_id),
    position: BigInt(row.position),
    blockedBy: row.blocked_by === null ? null : BigInt(row.blocked_by),
    selection: toSelection(row.selection),
  };
}

/** A checkpoint's version and selection, as the start-up check needs them. */
export interface CheckpointSelection {
  projection: string;
  version: number;
  selection: Selection | null;
}

const selectSelectionsSql = /* sql */ `
  select projection, version, selection from ${CHECKPOINTS_TABLE} where projection = any($1::text[])`;

/** The version and recorded selection of each of these projections that has a checkpoint. */
export async function selectSelections(db: Queryable, projections: readonly string[]): Promise<CheckpointSelection[]> {
  const { rows } = await db.query<{ projection: string; version: number; selection: unknown }>(selectSelectionsSql, [
    projections,
  ]);
  return rows.map((row) => ({ projection: row.projection, version: row.version, selection: toSelection(row.selection) }));
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
   where projection = $1
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
): Promise<boolean> {
  const { rowCount } = await db.query(storeCheckpointSql, [projection, ...positionParams(from), ...positionParams(to)]);
  return rowCount === 1;
}

const resetCheckpointSql = /* sql */ `
  insert into ${CHECKPOINTS_TABLE} (projection, version, selection) values ($1, $2, $3::jsonb)
  on conflict (projection) do update
     set version = excluded.version, selection = excluded.selection, era = 0, transaction_id = '0', position = 0,
         blocked_by = null, last_error = null, last_error_at = null, updated_at = now()`;

const discardFailedEventsSql = /* sql */ `delete from ${FAILED_EVENTS_TABLE} where projection = $1`;

/**
 * Puts the projection at the start of the store for `version` and `selection`: first set-up, a
 * rebuild after a version change, or a replay (which keeps the version, so a daemon running it
 * goes on from the start rather than set it up again; it records the selection of the
 * handlers it replays with). Its parked events go too: they describe the read model being
 * thrown away, and an event that fails again is parked again. Run it in the transaction that
 * runs `reset` and `setup`.
 */
export async function resetCheckpoint(
  db: Queryable,
  projection: string,
  version: number,
  selection: Selection,
): Promise<void> {
  await db.query(resetCheckpointSql, [projection, version, JSON.stringify(selection)]);
  await db.query(discardFailedEventsSql, [projection]);
}

// A halted projection (`blocked_by`) keeps the error it halted on; `projd failed` clears it.
const recordLastErrorSql = /* sql */ `
  update ${CHECKPOINTS_TABLE}
     set last_error = $2, last_error_at = now()
   where projection = $1 and blocked_by is null`;

/**
 * A daemon's pass failed and will be retried: recorded on the checkpoint, outside the batch
 * that rolled back, so that `projd status` shows the error and a projection being worked on.
 */
export async function recordLastError(db: Queryable, projection: string, message: string): Promise<void> {
  await db.query(recordLastErrorSql, [projection, message]);
}

const clearLastErrorSql = /* sql */ `
  update ${CHECKPOINTS_TABLE}
     set last_error = null, last_error_at = null
   where projection = $1 and blocked_by is null and last_error is not null`;

/** A pass succeeded again: the error recorded before no longer holds. */
export async function clearLastError(db: Queryable, projection: string): Promise<void> {
  await db.query(clearLastErrorSql, [projection]);
}
