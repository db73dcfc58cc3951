import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/loadConfig.js';
import { silentLogger } from '../../src/log.js';
import { loadProjections } from '../../src/projection/loadProjections.js';
import { accountsProjectionSource, appendAccountEvents, countAccountsApplied, expectSameReadModel } from '../helpers/accounts.js';
import { startIsolatedPostgres } from '../helpers/database.js';
import { writeProject, type Project } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

// Holds a transaction open, which holds back the whole server's xmin horizon: a server of its own.
const NAMES = ['perevent', 'sqlbatch', 'modulebatch'] as const;
let server: Awaited<ReturnType<typeof startIsolatedPostgres>>;
let pool: pg.Pool;
let project: Project;
let app: App;

beforeAll(async () => {
  server = await startIsolatedPostgres();
  pool = new pg.Pool({ connectionString: server.url, max: 4 });
  pool.on('error', () => {});
  project = await writeProject({
    'projections/perevent.mjs': accountsProjectionSource({ name: 'perevent', form: 'perEvent' }),
    'projections/sqlbatch.mjs': accountsProjectionSource({ name: 'sqlbatch', form: 'sqlBatch' }),
    'projections/modulebatch.mjs': accountsProjectionSource({ name: 'modulebatch', form: 'moduleBatch' }),
  });
  const config = await loadConfig({ env: { DATABASE_URL: server.url }, cwd: process.cwd() });
  config.projections.batchSize = 50;
  config.projections.pollInterval = 10 * 60_000; // everything arrives through notifications and the held-back re-check
  config.metrics.port = 0;
  config.health.stallAfter = 1; // `stalled` at the first look after events were held back
  app = createApp(config, { projections: await loadProjections(project.path('projections')), logger: silentLogger() });
  await app.start();
  await app.caughtUp();
}, 60_000);

afterAll(async () => {
  await app?.stop();
  await pool?.end();
  await server?.stop();
  await project?.cleanup();
});

describe('late commits with batch handlers', () => {
  it('delivers an event of an older transaction that commits after 300 later ones first; same read model in each form', async () => {
    const early = await pool.connect();
    try {
      await early.query('begin');
      await early.query('select pg_current_xact_id()'); // an id lower than every insert below
      await appendAccountEvents(pool, { count: 300, streams: 10 });
      await waitFor(() => app.projections().every((projection) => projection.state === 'stalled'), {
        timeoutMs: 10_000,
        message: 'every form held back behind the open transaction',
      });
      for (const name of NAMES) expect(await countAccountsApplied(pool, name)).toBe(0);

      // The highest position, the lowest transaction id: delivered before the 300, in the same batch as the first of them.
      await early.query(
        `insert into projd.events (stream_id, stream_version, type, data) values ('late-0', 1, 'account.debited', '{"amount": 5000}')`,
      );
      await early.query('commit');
      for (const name of NAMES) {
        await waitFor(async () => (await countAccountsApplied(pool, name)) === 301, { timeoutMs: 20_000, message: `${name} applied all` });
      }
      await expectSameReadModel(pool, NAMES, 301);
      await waitFor(() => app.projections().every((projection) => projection.state === 'live'), {
        timeoutMs: 10_000,
        message: 'every form live again',
      });
    } finally {
      early.release(true);
    }
  }, 60_000);
});
