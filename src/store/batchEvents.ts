import { eventTypeFilter } from './eventTypeFilter.js';
import { positionText, type Position } from './position.js';
import type { Queryable } from './queryable.js';

/** What `projd.batch_events()` returns in this transaction (migration 0008). */
export interface BatchEventsScope {
  /** Exclusive: the checkpoint the batch starts from. */
  after: Position;
  /** Inclusive: the batch's last event (or the scan's end). */
  through: Position;
  /** The projection's event types: exact types, `prefix.*` patterns or `*`. */
  eventTypes: readonly string[];
  /** The part of a partitioned projection, and the number of parts. @defaultValue 0 of 1 */
  part?: { part: number; parts: number };
}

/**
 * The settings as one SQL expression, each argument the SQL of its text value (the arrays as
 * `text[]`), so a statement that computes the bounds can set them in the same round trip.
 * Transaction-local (`true`): the settings end with the batch, so the relation is empty elsewhere.
 */
export function setBatchEventsExpression(scope: {
  after: string;
  through: string;
  types: string;
  prefixes: string;
  part: string;
  parts: string;
}): string {
  return /* sql */ `(set_config('projd.batch_after', ${scope.after}, true), set_config('projd.batch_through', ${scope.through}, true),
     set_config('projd.batch_types', ${scope.types}::text, true), set_config('projd.batch_prefixes', ${scope.prefixes}::text, true),
     set_config('projd.batch_part', ${scope.part}, true), set_config('projd.batch_parts', ${scope.parts}, true)) is not null`;
}

const setBatchEventsSql = /* sql */ `select ${setBatchEventsExpression({
  after: '$1',
  through: '$2',
  types: '$3::text[]',
  prefixes: '$4::text[]',
  part: '$5',
  parts: '$6',
})}`;

/** Points `projd.batch_events()` at the batch's events, for the rest of the transaction. */
export async function setBatchEvents(db: Queryable, scope: BatchEventsScope): Promise<void> {
  const types = eventTypeFilter(scope.eventTypes);
  const { part, parts } = scope.part ?? { part: 0, parts: 1 };
  await db.query(setBatchEventsSql, [
    positionText(scope.after),
    positionText(scope.through),
    types.exact,
    types.prefixes,
    String(part),
    String(parts),
  ]);
}
