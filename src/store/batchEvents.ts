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

// Transaction-local (`true`): the settings end with the batch, so the relation is empty elsewhere.
const setBatchEventsSql = /* sql */ `
  select set_config('projd.batch_after', $1, true), set_config('projd.batch_through', $2, true),
         set_config('projd.batch_types', $3::text[]::text, true),
         set_config('projd.batch_prefixes', $4::text[]::text, true),
         set_config('projd.batch_part', $5, true), set_config('projd.batch_parts', $6, true)`;

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
