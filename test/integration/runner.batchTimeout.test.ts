import { afterEach, describe, it } from 'vitest';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/loadConfig.js';
import { silentLogger } from '../../src/log.js';
import { defineProjection } from '../../src/projection/defineProjection.js';
import { createTestDatabase } from '../helpers/database.js';
import { waitFor } from '../helpers/waitFor.js';

const db = await createTestDatabase();
const SLEEPER = 'projd-test-sleeper';

// A set-up that outlives the batch timeout, and turns the server-side statement timeout off
// first, so that only the runner's own cancel can end it. The batch awaits its statements
// one by one and keeps its connection meanwhile: with one pooled connection, a cancel sent
// through the pool waits for the very statement it should cancel.
const slowSetup = defineProjection({
  name: 'slow_setup',
  version: 1,
  setup: ['set local statement_timeout = 0', `select pg_sleep(60) /* ${SLEEPER} */`],
  handlers: { t: async () => {} },
});

let app: App | undefined;
afterEach(async () => {
  await app?.stop();
});

/** Backends of this database running the sleeping statement. */
async function sleepers(): Promise<{ pid: number }[]> {
  const { rows } = await db.pool.query<{ pid: number }>(
    `select pid
       from pg_stat_activity
      where datname = current_database() and state = 'active' and pid <> pg_backend_pid()
        and query like $1`,
    [`%${SLEEPER}%`],
  );
  return rows;
}

describe('the batch timeout', () => {
  it('cancels the statement in flight on a connection of its own, even when the pool has only one', async () => {
    const config = await loadConfig({ env: { DATABASE_URL: db.url }, cwd: process.cwd() });
    config.database.poolSize = 1;
    config.projections.batchTimeout = 1_000;
    config.metrics.port = 0;
    app = createApp(config, { projections: [slowSetup], logger: silentLogger() });
    await app.start();

    const [first] = await waitFor(
      async () => {
        const found = await sleepers();
        return found.length > 0 && found;
      },
      { timeoutMs: 10_000, message: 'the set-up sleeping' },
    );
    // Cancelled about 1 s after the batch started, rather than 60 s.
    await waitFor(async () => !(await sleepers()).some(({ pid }) => pid === first!.pid), {
      timeoutMs: 6_000,
      message: `the sleeping statement of backend ${first!.pid} cancelled`,
    });
  }, 30_000);
});
