import type { ResolvedConfig } from '../config/types.js';
import { checkOut } from '../store/connect.js';
import { readOnlyQuery, type ReadOnlyQueryResult } from '../store/readOnlyQuery.js';
import { withPool } from './withPool.js';

export type { ReadOnlyQueryResult };

/**
 * `projd query`: runs one SQL statement in a read-only transaction, which is then rolled
 * back, and returns its rows: a look at a read model with nothing but projd installed.
 */
export async function queryReadOnly(config: ResolvedConfig, sql: string): Promise<ReadOnlyQueryResult> {
  return withPool(config, { migrate: false, max: 1 }, async (pool) => {
    const { client, release } = await checkOut(pool);
    try {
      return await readOnlyQuery(client, sql);
    } finally {
      release();
    }
  });
}
