import type { ProjdEvent } from '../event.js';
import type { Position } from './position.js';

/** The columns every event read selects, 64-bit values as text so none loses precision. */
export const EVENT_COLUMNS = /* sql */ `
  e.position::text as position, e.era, e.transaction_id::text as transaction_id, e.stream_id,
  e.stream_version, e.type, e.data, e.metadata, e.schema_version, e.created_at`;

export interface EventRow {
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

/** The row as a handler's event, and its place in the delivery order. */
export function toEvent(row: EventRow): { event: ProjdEvent; at: Position } {
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
