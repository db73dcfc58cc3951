import { readBatch } from '../../store/readBatch.js';
import type { ProjdEvent, Projection } from '../../projection/types.js';
import { upcastEvent } from '../../projection/upcasters.js';
import { BatchFailure, EventFailure } from '../batchErrors.js';
import type { HandlerDb } from '../handlerDb.js';
import type { Applied, ApplyContext } from './applyContext.js';

/** Reads the batch's events and hands them to the module's `handleBatch` in one call. */
export async function applyModuleBatch(context: ApplyContext): Promise<Applied> {
  const { client, projection, part, after, through, limit, prepared, handlerDb, deadline, prefetch, early } = context;
  const read = { eventTypes: projection.eventTypes, limit, part, through, prepared };
  const batch =
    early && early.form !== 'sqlBatch'
      ? await early.batch
      : ((await prefetch?.prefetch.take(after, limit)) ?? (await readBatch(client, { ...read, after })));
  const { events, scannedTo, full, heldBack } = batch;
  // The events cross the wire, so their read is a large share of a batch: the next one's read
  // overlaps this one's handler, on a connection of its own.
  if (prefetch && full && scannedTo) prefetch.prefetch.start(prefetch.pool, scannedTo, { ...read, timeoutMs: prefetch.timeoutMs });
  if (events.length > 0) {
    const lifted = liftEvents(projection, events);
    const range = { count: events.length, firstPosition: events[0]!.position, lastPosition: events.at(-1)!.position };
    const handleBatch = projection.handleBatch!;
    const failed = (error: unknown): never => {
      throw new BatchFailure('moduleBatch', range, error);
    };
    // Statements it left unawaited are answered with the checkpoint's move and the commit
    // (`answered`): the first that failed fails the batch. When it throws, its statements are
    // answered first, and one that failed before the throw counts as the failure.
    const run = async () => {
      try {
        await handleBatch(lifted, handlerDb.db);
      } catch (error) {
        const failure = await handlerDb.settle();
        throw failure ? failure.error : error;
      }
      if (await handlerDb.refused()) await settle(handlerDb);
    };
    await deadline.race(run()).catch(failed);
    return { applied: events.length, scannedTo, full, heldBack, answered: () => deadline.race(settle(handlerDb)).catch(failed) };
  }
  return { applied: events.length, scannedTo, full, heldBack };
}

/** Once every statement is answered: the first that failed, in the order they were sent. */
async function settle(handlerDb: HandlerDb): Promise<void> {
  const failure = await handlerDb.settle();
  if (failure) throw failure.error;
}

/**
 * The events at their current schema versions, lifted before the handler runs: an event with no
 * path up is known by its index, so it is isolated at once rather than by halving the batch.
 */
function liftEvents(projection: Projection, events: readonly ProjdEvent[]): readonly ProjdEvent[] {
  if (projection.upcasters === undefined) return events;
  return events.map((event, index) => {
    try {
      return upcastEvent(projection, event);
    } catch (error) {
      throw new EventFailure(event, index, error, events.length);
    }
  });
}
