import type { ResolvedConfig } from '../config/types.js';
import { appendEvents, type AppendOptions, type AppendResult, type NewEvent } from '../store/appendEvents.js';
import { assertEraCurrent } from '../store/era.js';
import { withPool } from './withPool.js';

export { isVersionConflictError, type AppendResult, type ExpectedVersion, type NewEvent } from '../store/appendEvents.js';

/**
 * `projd append`: appends `events` to the end of a stream in one statement (all or none), after
 * creating projd's tables if need be, as `run` would. A restored store is refused, as by `run`.
 */
export async function appendToStream(
  config: ResolvedConfig,
  streamId: string,
  events: readonly NewEvent[],
  options: AppendOptions = {},
): Promise<AppendResult> {
  return withPool(config, { migrate: true }, async (pool) => {
    await assertEraCurrent(pool);
    return appendEvents(pool, streamId, events, options);
  });
}
