import type pg from 'pg';
import { handlerFor, readsEventType } from '../../projection/handlerFor.js';
import type { ProjdEvent, Projection } from '../../projection/types.js';
import { setBatchEvents } from '../../store/batchEvents.js';
import type { Position } from '../../store/position.js';
import { createHandlerDb } from '../handlerDb.js';

/** Applies one stored event, in the caller's transaction. */
export type OneEventApplier = (client: pg.ClientBase, stored: { event: ProjdEvent; at: Position }) => Promise<void>;

/**
 * How `projd failed retry` applies one parked event: through its per-event handler, else as
 * a batch of one through the projection's batch form. Undefined when none takes its type.
 */
export function oneEventApplier(projection: Projection, type: string): OneEventApplier | undefined {
  const handler = handlerFor(projection, type);
  // Unprepared: a one-off statement gains nothing from it.
  if (handler) return async (client, { event }) => handler(event, createHandlerDb(client, { prepare: false }));
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
  if (handleBatch) return async (client, { event }) => handleBatch([event], createHandlerDb(client, { prepare: false }));
  return undefined;
}
