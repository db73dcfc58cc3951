import type pg from 'pg';
import type { ResolvedConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { checkServer, createPool, daemonApplicationName } from '../store/connect.js';
import { assertSchemaKnown, migrate } from '../store/migrate.js';

export interface CommandPoolOptions {
  /** Create or upgrade projd's tables first; `work` gets the migrations applied. */
  migrate: boolean;
  /** @defaultValue 2 */
  max?: number;
  /** Told of idle connections lost and migrations applied. @defaultValue a logger that writes nothing */
  logger?: Logger;
}

/** A small pool for one command: the server checked, optionally migrated, ended whatever happens. */
export async function withPool<T>(
  config: ResolvedConfig,
  { migrate: migrateFirst, max = 2, logger = silentLogger() }: CommandPoolOptions,
  work: (pool: pg.Pool, applied: string[]) => Promise<T>,
): Promise<T> {
  const pool = createPool({
    url: config.database.url,
    max,
    connectTimeout: config.database.connectTimeout,
    applicationName: daemonApplicationName('cli'),
  });
  // An idle connection lost meanwhile must not end the process: the next query on it fails by itself.
  pool.on('error', (error) => logger.warn({ err: error.message }, 'pool.idle_client_error'));
  try {
    await checkServer(pool, config.database.url);
    let applied: string[] = [];
    if (migrateFirst) applied = await migrate(pool);
    else await assertSchemaKnown(pool); // a command that does not migrate still refuses a newer schema
    if (applied.length > 0) logger.info({ applied }, 'store.migrated');
    return await work(pool, applied);
  } finally {
    await pool.end();
  }
}
