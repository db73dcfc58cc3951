import { handlerFor } from '../../projection/handlerFor.js';
import type { ProjdEvent, Projection } from '../../projection/types.js';
import { upcastEvent } from '../../projection/upcasters.js';
import { readBatch } from '../../store/readBatch.js';
import { BatchTimeoutError, EventFailure } from '../batchErrors.js';
import type { HandlerDb } from '../handlerDb.js';
import type { Applied, ApplyContext } from './applyContext.js';

/**
 * Statements unanswered at most before the next handler waits for the oldest: a handler that
 * queues without awaiting fills the pipeline this deep, and memory stays flat however big the batch.
 */
const MAX_IN_FLIGHT = 2_000;

/**
 * Reads the batch's events and hands them to their handlers one at a time, in order. Handlers
 * may leave statements unawaited (YAML handlers always do): they go out in pipeline, many per
 * round trip, and the checkpoint's move and the commit follow them in the last one (`answered`).
 */
export async function applyPerEvent(context: ApplyContext): Promise<Applied> {
  const { client, projection, part, after, through, limit, prepared, handlerDb, deadline, early } = context;
  const batch = await (early && early.form !== 'sqlBatch'
    ? early.batch
    : readBatch(client, { after, through, eventTypes: projection.eventTypes, limit, part, prepared }));
  const { events, scannedTo, full, heldBack } = batch;
  // One race for the whole batch: once the deadline passes, an abandoned handler's next
  // statement is refused by `db`, so the loop cannot go on behind the rolled-back batch.
  const applying = { index: 0 };
  const blameTimeout = (error: unknown): never => {
    // Timed out in a handler: the runner may blame that event when it was alone in its batch.
    // With statements in flight, the server was working on the oldest one.
    if (!(error instanceof BatchTimeoutError)) throw error;
    const index = handlerDb.pendingIndex ?? applying.index;
    throw new EventFailure(events[index]!, index, error, events.length);
  };
  await deadline.race(applyEvents(projection, events, handlerDb, applying)).catch(blameTimeout);
  const answered = () => deadline.race(settleEvents(events, handlerDb)).catch(blameTimeout);
  return { applied: events.length, scannedTo, full, heldBack, answered };
}

/** Once every statement is answered: the first one that failed, in the order they were sent, fails its own event. */
async function settleEvents(events: readonly ProjdEvent[], handlerDb: HandlerDb): Promise<void> {
  const failure = await handlerDb.settle();
  if (failure) throw new EventFailure(events[failure.index]!, failure.index, failure.error, events.length);
}

/**
 * Applies `events` in order; `applying.index` follows the event in flight. Statements may still
 * be in flight when this resolves, but none that pg refused to send: a failure known by then
 * (refused, or answered already) fails its event here, and the batch sends no commit.
 */
async function applyEvents(
  projection: Projection,
  events: readonly ProjdEvent[],
  handlerDb: HandlerDb,
  applying: { index: number },
): Promise<void> {
  for (const [index, event] of events.entries()) {
    applying.index = index;
    handlerDb.startEvent(index);
    try {
      // readBatch only returns types the projection reads, and this form only runs when each has a handler.
      // An event with no path up to its current schema version fails here, as its handler's throw would.
      await handlerFor(projection, event.type)!(upcastEvent(projection, event), handlerDb.db);
    } catch (error) {
      throw await blame(handlerDb, events, index, error);
    }
    // The transaction is aborted: whatever follows would fail behind that statement.
    if (handlerDb.firstFailure) break;
    if (handlerDb.inFlight > MAX_IN_FLIGHT) await handlerDb.drain(MAX_IN_FLIGHT);
  }
  if (await handlerDb.refused()) await settleEvents(events, handlerDb);
}

/**
 * The `index`-th event's handler threw. A statement an earlier event left in flight may have
 * failed first (what the handler saw is then its knock-on, 25P02): that event is the one to blame.
 */
async function blame(handlerDb: HandlerDb, events: readonly ProjdEvent[], index: number, error: unknown) {
  const first = await handlerDb.settle();
  const knockOn = first !== undefined && first.error !== error && handlerDb.sent(error);
  if (first && (first.index < index || (first.index === index && knockOn))) {
    return new EventFailure(events[first.index]!, first.index, first.error, events.length);
  }
  return new EventFailure(events[index]!, index, error, events.length);
}
