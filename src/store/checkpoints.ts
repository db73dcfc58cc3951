import { CHECKPOINTS_TABLE } from './names.js';
import type { Position } from './position.js';
import type { Queryable } from './queryable.js';

export interface Checkpoint extends Position {
  /** The projection version whose handlers wrote this checkpoint. */
  version: number;
}

interface CheckpointRow {
  version: number;
  transaction_id: string;
  position: string;
}

const selectCheckpointSql = /* sql */ `
  select version, transaction_id::text as transaction_id, position::text as position
    from ${CHECKPOINTS_TABLE}
   where projection = $1`;

export async function selectCheckpoint(db: Queryable, projection: string): Promise<Checkpoint | null> {
  const { rows } = await db.query<CheckpointRow>(selectCheckpointSql, [projection]);
  const row = rows[0];
  if (!row) return null;
  return { version: row.version, transactionId: BigInt(row.transaction_id), position: BigInt(row.position) };
}

const storeCheckpointSql = /* sql */ `
  update ${CHECKPOINTS_TABLE}
     set transaction_id = $4::xid8, position = $5::bigint, updated_at = now()
   where projection = $1
     and transaction_id = $2::xid8 and position = $3::bigint`;

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
  const { rowCount } = await db.query(storeCheckpointSql, [
    projection,
    from.transactionId.toString(),
    from.position.toString(),
    to.transactionId.toString(),
    to.position.toString(),
  ]);
  return rowCount === 1;
}

const resetCheckpointSql = /* sql */ `
  insert into ${CHECKPOINTS_TABLE} (projection, version) values ($1, $2)
  on conflict (projection) do update
     set version = excluded.version, transaction_id = '0', position = 0, updated_at = now()`;

/** Puts the projection back at the start of the store, for `version`. */
export async function resetCheckpoint(db: Queryable, projection: string, version: number): Promise<void> {
  await db.query(resetCheckpointSql, [projection, version]);
}
