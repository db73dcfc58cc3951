import type pg from 'pg';
import { errorMessage, UserError } from '../errors.js';
import { handlerFor } from '../projection/handlerFor.js';
import type { EventHandler, Projection } from '../projection/types.js';
import { selectCheckpoint } from '../store/checkpoints.js';
import { describeFailure } from '../store/classifyError.js';
import { createHandlerDb } from './handlerDb.js';
import { checkOut } from '../store/connect.js';
import {
  lockFailedEvent,
  noteRetryFailure,
  resolveFailedEvent,
  unblockProjection,
  type FailedEvent,
} from '../store/failedEvents.js';
import { lockProjection } from '../store/locks.js';
import { EVENTS_CHANNEL } from '../store/names.js';
import { readEvent } from '../store/readEvent.js';

export type ResolveOutcome =
  | { id: bigint; outcome: 'retried' | 'skipped'; event: FailedEvent; unblocked: boolean }
  | { id: bigint; outcome: 'failed'; event: FailedEvent; error: string }
  | { id: bigint; outcome: 'not_parked'; status: string | null };

/**
 * `projd failed retry`: applies a parked event through the projection's current handler, in a
 * transaction of its own under the projection's lock (waiting for a running batch to end).
 * A projection halted on this event moves onto it and runs again.
 */
export async function retryFailedEvent(
  pool: pg.Pool,
  projections: ReadonlyMap<string, Projection>,
  id: bigint,
): Promise<ResolveOutcome> {
  return resolve(pool, id, 'retried', async (client, failed) => {
    const handler = retryHandler(projections, failed);
    if (!handler) {
      throw new Error(`projection '${failed.projection}' has no handler for '${failed.type}' any more`);
    }
    const stored = await readEvent(client, failed.position);
    if (!stored) throw new Error(`event ${failed.position} is no longer in projd.events`);
    // Unprepared: a one-off statement gains nothing from it.
    const handlerDb = createHandlerDb(client, { prepare: false });
    let thrown: { error: unknown } | undefined;
    try {
      await handler(stored.event, handlerDb.db);
    } catch (error) {
      thrown = { error };
    }
    // Statements the handler left in flight are answered before the retry commits or rolls back.
    const failure = await handlerDb.settle();
    if (thrown) throw thrown.error;
    if (failure) throw failure.error;
  });
}

/** The handler a retry applies `failed` through: its projection's current one for its type. */
function retryHandler(projections: ReadonlyMap<string, Projection>, failed: FailedEvent): EventHandler | undefined {
  const projection = projections.get(failed.projection);
  return projection && handlerFor(projection, failed.type);
}

/**
 * Refuses the whole retry, before anything is touched, when a parked event among `targets`
 * has no handler to go through (its projection left the folder, or no longer handles its
 * type): retrying it could only fail, and would overwrite the error it was parked with.
 */
export function assertRetryable(
  targets: readonly FailedEvent[],
  projections: ReadonlyMap<string, Projection>,
  projectionsDir: string,
): void {
  const unhandled = targets.filter((failed) => failed.status === 'parked' && !retryHandler(projections, failed));
  const [first] = unhandled;
  if (!first) return;
  const projection = projections.get(first.projection);
  const problem = projection
    ? `projection '${first.projection}'${projection.source ? ` (${projection.source})` : ''} has no handler for '${first.type}'`
    : `projection '${first.projection}' is not in ${projectionsDir}`;
  const more = unhandled.length > 1 ? ` (and ${unhandled.length - 1} more like it)` : '';
  throw new UserError(`failed event ${first.id}: ${problem}${more}; nothing was retried`);
}

/** `projd failed skip`: gives up on a parked event; a projection halted on it moves past it. */
export async function skipFailedEvent(pool: pg.Pool, id: bigint): Promise<ResolveOutcome> {
  return resolve(pool, id, 'skipped', async () => undefined);
}

async function resolve(
  pool: pg.Pool,
  id: bigint,
  status: 'retried' | 'skipped',
  apply: (client: pg.PoolClient, failed: FailedEvent) => Promise<void>,
): Promise<ResolveOutcome> {
  const { client, release } = await checkOut(pool);
  let failed: FailedEvent | null = null;
  try {
    await client.query('begin');
    // The projection's lock first, as a batch takes it, then the row: never the other way round.
    const peek = await lockFailedEvent(client, id, { lock: false });
    if (!peek) {
      await client.query('rollback');
      return { id, outcome: 'not_parked', status: null };
    }
    await lockProjection(client, peek.projection);
    failed = await lockFailedEvent(client, id);
    if (!failed || failed.status !== 'parked') {
      await client.query('rollback');
      return { id, outcome: 'not_parked', status: failed?.status ?? null };
    }
    await apply(client, failed);
    await resolveFailedEvent(client, id, status);
    let unblocked = false;
    const checkpoint = await selectCheckpoint(client, failed.projection);
    if (checkpoint?.blockedBy === id) {
      const stored = await readEvent(client, failed.position);
      if (stored) unblocked = await unblockProjection(client, failed.projection, id, stored.at);
    }
    // Wakes the daemons: a halted projection runs again at once. Sent when this commits.
    await client.query(`select pg_notify('${EVENTS_CHANNEL}', '')`);
    await client.query('commit');
    return { id, outcome: status, event: failed, unblocked };
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    if (!failed) throw error;
    await noteRetryFailure(pool, id, describeFailure(error));
    return { id, outcome: 'failed', event: failed, error: errorMessage(error) };
  } finally {
    release();
  }
}
