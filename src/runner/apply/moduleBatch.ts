import { readBatch } from '../../store/readBatch.js';
import { BatchFailure } from '../batchErrors.js';
import type { Applied, ApplyContext } from './applyContext.js';

/** Reads the batch's events and hands them to the module's `handleBatch` in one call. */
export async function applyModuleBatch({ client, projection, part, after, limit, db, deadline }: ApplyContext): Promise<Applied> {
  const { events, scannedTo, full, heldBack } = await readBatch(client, { after, eventTypes: projection.eventTypes, limit, part });
  if (events.length > 0) {
    const range = { count: events.length, firstPosition: events[0]!.position, lastPosition: events.at(-1)!.position };
    const handleBatch = projection.handleBatch!;
    // A throw before its first await counts as the handler's failure too.
    await deadline.race(Promise.resolve().then(() => handleBatch(events, db))).catch((error: unknown) => {
      throw new BatchFailure('moduleBatch', range, error);
    });
  }
  return { applied: events.length, scannedTo, full, heldBack };
}
