import type { ResolvedConfig } from '../config/types.js';
import { checkOut } from '../store/connect.js';
import { startNewEra } from '../store/era.js';
import { withPool } from './withPool.js';

/** `projd migrate`: creates or upgrades projd's tables, and returns the migrations it applied. */
export async function migrateStore(config: ResolvedConfig): Promise<string[]> {
  return withPool(config, { migrate: true }, async (_pool, applied) => applied);
}

/**
 * `projd migrate --new-era`: repairs a store restored into another cluster, so that what it
 * holds sorts before everything written from now on. Returns null when it was not needed.
 */
export async function startNewStoreEra(config: ResolvedConfig): Promise<{ from: number; to: number } | null> {
  return withPool(config, { migrate: true }, async (pool) => {
    const { client, release } = await checkOut(pool);
    try {
      return await startNewEra(client);
    } finally {
      release();
    }
  });
}
