import type { ProjdEvent } from '../event.js';
import type { Position } from './position.js';

/**
 * The columns every event read selects, in this order: reads ask for rows as arrays
 * (`rowMode: 'array'`), which the client builds faster than objects keyed by column name, and
 * `toEvent` takes them by index. 64-bit values come as text so none loses precision; the time
 * as milliseconds since the epoch (a Date holds no finer), which both ends convert far faster
 * than a timestamp's text; metadata as text, so the usual `{}` is not parsed: a batch converts
 * thousands of rows.
 */
export const EVENT_COLUMNS = /* sql */ `
  e.position::text as position, e.era, e.transaction_id::text as transaction_id, e.stream_id,
  e.stream_version, e.type, e.data, e.metadata::text as metadata, e.schema_version,
  floor(extract(epoch from e.created_at) * 1000)::float8 as created_at`;

/** The names `EVENT_COLUMNS` gives its columns, in order: for a statement that selects them again. */
export const EVENT_COLUMN_NAMES = [
  'position',
  'era',
  'transaction_id',
  'stream_id',
  'stream_version',
  'type',
  'data',
  'metadata',
  'schema_version',
  'created_at',
] as const;

/** How many values of a row `EVENT_COLUMNS` fills, from its start. */
export const EVENT_COLUMN_COUNT = EVENT_COLUMN_NAMES.length;

/** A row of `EVENT_COLUMNS`, as the client returns it in `rowMode: 'array'`. */
export type EventValues = readonly unknown[];

/** The row as a handler's event, and its place in the delivery order. */
export function toEvent(values: EventValues): { event: ProjdEvent; at: Position } {
  const at = {
    era: values[1] as number,
    transactionId: BigInt(values[2] as string),
    position: BigInt(values[0] as string),
  };
  const metadata = values[7] as string;
  return {
    at,
    event: {
      position: at.position,
      transactionId: at.transactionId,
      streamId: values[3] as string,
      streamVersion: values[4] as number,
      type: values[5] as string,
      data: values[6],
      metadata: metadata === '{}' ? {} : (JSON.parse(metadata) as Record<string, unknown>),
      schemaVersion: values[8] as number,
      createdAt: new Date(values[9] as number),
    },
  };
}
