import type { ProjdEvent } from '../event.js';
import type { Position } from './position.js';

/**
 * The columns every event read selects, 64-bit values as text so none loses precision. The
 * time as milliseconds since the epoch (a Date holds no finer), which both ends convert far
 * faster than a timestamp's text: a batch converts thousands.
 */
export const EVENT_COLUMNS = /* sql */ `
  e.position::text as position, e.era, e.transaction_id::text as transaction_id, e.stream_id,
  e.stream_version, e.type, e.data, e.metadata, e.schema_version,
  floor(extract(epoch from e.created_at) * 1000)::float8 as created_at`;

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
  /** Milliseconds since the epoch. */
  created_at: number;
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
      createdAt: new Date(row.created_at),
    },
  };
}
