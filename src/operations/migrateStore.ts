import type { ResolvedConfig } from '../config/types.js';
import { adoptEventsTable, type AdoptResult } from '../store/adopt.js';
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

/**
 * `projd migrate --adopt`: makes projd read the application's own events table, the config's
 * `events` section, instead of `projd.events`. Idempotent; see docs/adopting.md.
 */
export async function adoptStore(config: ResolvedConfig): Promise<AdoptResult> {
  return withPool(config, { migrate: true }, (pool) => adoptEventsTable(pool, config.events));
}
