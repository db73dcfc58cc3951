import type { ProjdEvent } from '../projection/types.js';
import { EVENTS_TABLE } from './names.js';
import type { Position } from './position.js';
import type { Queryable } from './queryable.js';

const readEventSql = /* sql */ `
  select position::text as position, era, transaction_id::text as transaction_id, stream_id, stream_version,
         type, data, metadata, schema_version, created_at
    from ${EVENTS_TABLE} where position = $1::bigint`;

interface EventRow {
  position: string;
  era: number;
  transaction_id: string;
  stream_id: string;
  stream_version: number;
  type: string;
  data: unknown;
  metadata: Record<string, unknown>;
  schema_version: number;
  created_at: Date;
}

/** One event by its global position, with its place in the delivery order; null if absent. */
export async function readEvent(db: Queryable, position: bigint): Promise<{ event: ProjdEvent; at: Position } | null> {
  const { rows } = await db.query<EventRow>(readEventSql, [position.toString()]);
  const row = rows[0];
  if (!row) return null;
  const at = { era: row.era, transactionId: BigInt(row.transaction_id), position: BigInt(row.position) };
  return {
    at,
    event: {
      position: at.position,
      transactionId: at.transactionId,
      streamId: row.stream_id,
      streamVersion: row.stream_version,
      type: row.type,
      data: row.data,
      metadata: row.metadata,
      schemaVersion: row.schema_version,
      createdAt: row.created_at,
    },
  };
}
