import type pg from 'pg';
import { handlerFor, readsEventType } from '../../projection/handlerFor.js';
import type { ProjdEvent, Projection } from '../../projection/types.js';
import { upcastEvent } from '../../projection/upcasters.js';
import { setBatchEvents } from '../../store/batchEvents.js';
import type { Position } from '../../store/position.js';
import { createHandlerDb, type HandlerDb } from '../handlerDb.js';

/** Applies one stored event, in the caller's transaction. */
export type OneEventApplier = (client: pg.ClientBase, stored: { event: ProjdEvent; at: Position }) => Promise<void>;

/**
 * How `projd failed retry` applies one parked event: through its per-event handler, else as
 * a batch of one through the projection's batch form. Undefined when none takes its type.
 */
export function oneEventApplier(projection: Projection, type: string): OneEventApplier | undefined {
  const handler = handlerFor(projection, type);
  if (handler) return async (client, { event }) => withHandlerDb(client, (db) => handler(upcastEvent(projection, event), db));
  if (!readsEventType(projection.eventTypes, type)) return undefined;
  const { batch, handleBatch } = projection;
  if (batch) {
    return async (client, { at }) => {
      // The bounds of a batch holding this event alone: just before it, through it.
      const after = { ...at, position: at.position - 1n };
      await setBatchEvents(client, { after, through: at, eventTypes: projection.eventTypes });
      for (const sql of batch) await client.query(sql);
    };
  }
  if (handleBatch) return async (client, { event }) => withHandlerDb(client, (db) => handleBatch([upcastEvent(projection, event)], db));
  return undefined;
}

/**
 * Runs `apply` with the transaction as handlers see it, then waits for the statements it left
 * in flight: the first that failed fails the retry, as its own error. Unprepared: a one-off
 * statement gains nothing from it.
 */
async function withHandlerDb(client: pg.ClientBase, apply: (db: HandlerDb['db']) => Promise<void> | void): Promise<void> {
  const handlerDb = createHandlerDb(client, { prepare: false });
  let thrown: { error: unknown } | undefined;
  try {
    await apply(handlerDb.db);
  } catch (error) {
    thrown = { error };
  }
  const failure = await handlerDb.settle();
  if (thrown) throw thrown.error;
  if (failure) throw failure.error;
}
