import type pg from 'pg';
import type { ResolvedConfig } from '../config/types.js';
import { UserError } from '../errors.js';
import { loadProjections } from '../projection/loadProjections.js';
import type { Projection } from '../projection/types.js';
import { assertRetryable, retryFailedEvent, skipFailedEvent, type ResolveOutcome } from '../runner/resolveFailedEvents.js';
import { FAILED_EVENT_STATUSES, listFailedEvents, type FailedEvent } from '../store/failedEvents.js';
import { withPool } from './withPool.js';

export interface FailedEventsQuery {
  projection?: string;
  /** Include retried and skipped events, not only parked ones. */
  all?: boolean;
}

/** `projd failed list`: the parked events (or every recorded one), by projection and position. */
export async function listFailed(config: ResolvedConfig, query: FailedEventsQuery = {}): Promise<FailedEvent[]> {
  return withPool(config, { migrate: true }, (pool) =>
    listFailedEvents(pool, {
      ...(query.projection === undefined ? {} : { projection: query.projection }),
      statuses: query.all ? FAILED_EVENT_STATUSES : ['parked'],
    }),
  );
}

/**
 * `projd failed retry`: applies parked events through the current handlers (loaded from the
 * projections folder), each in its own locked transaction. `ids: 'all'` takes every parked
 * event (of `projection`, when given). Refused before any is touched when an id is unknown or
 * a parked event has no handler here.
 */
export async function retryFailed(
  config: ResolvedConfig,
  ids: readonly bigint[] | 'all',
  options: { projection?: string; projections?: Projection[] } = {},
): Promise<ResolveOutcome[]> {
  const projections = options.projections ?? (await loadProjections(config.projections.dir));
  const byName = new Map(projections.map((projection) => [projection.name, projection]));
  return withPool(config, { migrate: true }, async (pool) => {
    const targets = ids === 'all' ? await parkedEvents(pool, options.projection) : await knownEvents(pool, ids);
    assertRetryable(targets, byName, config.projections.dir);
    const outcomes: ResolveOutcome[] = [];
    for (const { id } of targets) outcomes.push(await retryFailedEvent(pool, byName, id));
    return outcomes;
  });
}

/** `projd failed skip`: gives up on parked events; a projection halted on one moves past it. */
export async function skipFailed(config: ResolvedConfig, ids: readonly bigint[]): Promise<ResolveOutcome[]> {
  return withPool(config, { migrate: true }, async (pool) => {
    const outcomes: ResolveOutcome[] = [];
    for (const { id } of await knownEvents(pool, ids)) outcomes.push(await skipFailedEvent(pool, id));
    return outcomes;
  });
}

async function parkedEvents(pool: pg.Pool, projection: string | undefined): Promise<FailedEvent[]> {
  return listFailedEvents(pool, projection === undefined ? {} : { projection });
}

/** The events of the ids as given, in their order, once every one is recorded: a typo acts on none. */
async function knownEvents(pool: pg.Pool, ids: readonly bigint[]): Promise<FailedEvent[]> {
  const known = new Map(
    (await listFailedEvents(pool, { ids, statuses: FAILED_EVENT_STATUSES })).map((event) => [event.id, event]),
  );
  const unknown = ids.filter((id) => !known.has(id));
  if (unknown.length > 0) throw new UserError(`no failed event with id ${unknown.join(', ')} (see projd failed list)`);
  return ids.map((id) => known.get(id)!);
}
