import { handlerFor } from '../../projection/handlerFor.js';
import type { Projection } from '../../projection/types.js';
import type { Applied, ApplyContext } from './applyContext.js';
import { applyModuleBatch } from './moduleBatch.js';
import { applyPerEvent } from './perEvent.js';
import { applySqlBatch } from './sqlBatch.js';

/** How a batch is applied: the projection's SQL batch handler, its module batch handler, or per event. */
export type ApplyForm = 'sqlBatch' | 'moduleBatch' | 'perEvent';

const FORMS: Record<ApplyForm, (context: ApplyContext) => Promise<Applied>> = {
  sqlBatch: applySqlBatch,
  moduleBatch: applyModuleBatch,
  perEvent: applyPerEvent,
};

/**
 * Whether the per-event handlers alone can apply every event the projection reads: then a
 * batch form's failure is retried per event to find the event at fault.
 */
export function canApplyPerEvent(projection: Pick<Projection, 'handlers' | 'eventTypes'>): boolean {
  return projection.handlers.size > 0 && projection.eventTypes.every((type) => handlerFor(projection, type) !== undefined);
}

/**
 * The fastest form the projection offers: SQL batch, then module batch, then per event.
 * `perEvent` asks for the per-event handlers, to isolate a failure, when they can do it.
 */
export function pickForm(projection: Projection, { perEvent = false }: { perEvent?: boolean } = {}): ApplyForm {
  if (perEvent && canApplyPerEvent(projection)) return 'perEvent';
  if (projection.batch !== undefined) return 'sqlBatch';
  if (projection.handleBatch !== undefined) return 'moduleBatch';
  return 'perEvent';
}

/** Applies the next batch in `form`: when this resolves, every statement it sent is answered. */
export async function applyBatch(form: ApplyForm, context: ApplyContext): Promise<Applied> {
  const { answered, ...applied } = await FORMS[form](context);
  await answered?.();
  return applied;
}

/**
 * As `applyBatch`, but the form's statements may still be in flight: the caller sends its
 * checkpoint's move and commit behind them, then awaits `answered` (see `Applied.answered`).
 */
export function applyBatchInFlight(form: ApplyForm, context: ApplyContext): Promise<Applied> {
  return FORMS[form](context);
}
