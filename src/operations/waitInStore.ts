import type { ResolvedConfig } from '../config/types.js';
import { connectionError } from '../store/connect.js';
import { listenForProgress } from '../wait/listenForProgress.js';
import type { WaitOutcome } from '../wait/progressWaiters.js';
import { withPool } from './withPool.js';

export interface WaitInStoreRequest {
  projections: readonly string[];
  position: bigint;
  timeoutMs: number;
}

/**
 * `projd wait`: waits, on a LISTEN of its own (`database.listenUrl`), until every projection
 * has applied or passed the event at `position`. Applied or timed out, both are outcomes;
 * an unknown projection or a position above the head is a `UserError`.
 */
export async function waitInStore(
  config: ResolvedConfig,
  request: WaitInStoreRequest,
): Promise<Extract<WaitOutcome, { kind: 'applied' | 'timed_out' }>> {
  return withPool(config, { migrate: false }, async (pool) => {
    const { database } = config;
    const progress = await listenForProgress({
      db: pool,
      url: database.listenUrl,
      timeout: database.connectTimeout,
      probeInterval: database.listenProbeInterval,
    }).catch((error: unknown) => {
      throw connectionError(database.listenUrl, error);
    });
    try {
      const outcome = await progress.waiters.wait(request);
      if (outcome.kind === 'aborted' || outcome.kind === 'closed') throw new Error(`wait: ended (${outcome.kind}) before the timeout`);
      return outcome;
    } finally {
      await progress.close();
    }
  });
}
