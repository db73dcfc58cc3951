import { handlerFor } from '../../projection/handlerFor.js';
import type { ProjdEvent, Projection, ProjectionDb } from '../../projection/types.js';
import { readBatch } from '../../store/readBatch.js';
import { BatchTimeoutError, EventFailure } from '../batchErrors.js';
import type { Applied, ApplyContext } from './applyContext.js';

/** Reads the batch's events and hands them to their handlers one at a time, in order. */
export async function applyPerEvent({ client, projection, part, after, limit, db, deadline }: ApplyContext): Promise<Applied> {
  const batch = await readBatch(client, { after, eventTypes: projection.eventTypes, limit, part });
  const { events, scannedTo, full, heldBack } = batch;
  // One race for the whole batch: once the deadline passes, an abandoned handler's next
  // statement is refused by `db`, so the loop cannot go on behind the rolled-back batch.
  const applying = { index: 0 };
  await deadline.race(applyEvents(projection, events, db, applying)).catch((error: unknown) => {
    // Timed out in a handler: the runner may blame that event when it was alone in its batch.
    if (!(error instanceof BatchTimeoutError)) throw error;
    throw new EventFailure(events[applying.index]!, applying.index, error, events.length);
  });
  return { applied: events.length, scannedTo, full, heldBack };
}

/** Applies `events` in order; `applying.index` follows the event in flight. */
async function applyEvents(
  projection: Projection,
  events: readonly ProjdEvent[],
  db: ProjectionDb,
  applying: { index: number },
): Promise<void> {
  for (const [index, event] of events.entries()) {
    applying.index = index;
    try {
      // readBatch only returns types the projection reads, and this form only runs when each has a handler.
      await handlerFor(projection, event.type)!(event, db);
    } catch (error) {
      throw new EventFailure(event, index, error, events.length);
    }
  }
}
