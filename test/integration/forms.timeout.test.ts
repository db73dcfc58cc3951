import { afterEach, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/loadConfig.js';
import { silentLogger } from '../../src/log.js';
import { defineProjection } from '../../src/projection/defineProjection.js';
import { createTestDatabase } from '../helpers/database.js';
import { waitFor } from '../helpers/waitFor.js';

const db = await createTestDatabase();

// A SQL batch handler that outlives the batch timeout whenever its batch holds the slow event.
const sleepy = defineProjection({
  name: 'sleepy',
  version: 1,
  setup: 'create table if not exists sleepy_applied (position bigint primary key, times integer not null default 1)',
  eventTypes: ['t'],
  batch: [
    `select pg_sleep(case when data ? 'slow' then 30 else 0 end) from projd.batch_events()`,
    `insert into sleepy_applied (position) select position from projd.batch_events()
     on conflict (position) do update set times = sleepy_applied.times + 1`,
  ],
});

let app: App | undefined;
afterEach(async () => {
  await app?.stop();
});

describe('a batch handler that times out', () => {
  it('retries smaller batches as a transient failure, then parks the event that times out alone', async () => {
    await db.pool.query(
      `insert into projd.events (stream_id, stream_version, type, data)
       select 's-' || i, 1, 't', case when i = 25 then '{"slow": true}'::jsonb else '{}'::jsonb end
         from generate_series(1, 40) i order by i`,
    );
    const { rows } = await db.pool.query<{ position: string }>(`select position::text from projd.events where data ? 'slow'`);
    const config = await loadConfig({ env: { DATABASE_URL: db.url }, cwd: process.cwd() });
    config.projections.batchTimeout = 300;
    config.projections.maxTransientAttempts = 2;
    config.projections.pollInterval = 100;
    config.metrics.port = 0;
    app = createApp(config, { projections: [sleepy], logger: silentLogger() });
    await app.start();

    await waitFor(async () => (await db.pool.query(`select 1 from projd.failed_events where projection = 'sleepy'`)).rowCount === 1, {
      timeoutMs: 50_000,
      message: 'the slow event parked',
    });
    const { rows: parked } = await db.pool.query(
      `select position::text, attempts, error_code from projd.failed_events where projection = 'sleepy'`,
    );
    expect(parked).toEqual([{ position: rows[0]!.position, attempts: 2, error_code: '57014' }]);
    await waitFor(async () => (await db.pool.query('select 1 from sleepy_applied')).rowCount === 39, {
      timeoutMs: 10_000,
      message: 'the other 39 applied',
    });
    const { rows: times } = await db.pool.query(`select max(times) as max from sleepy_applied`);
    expect(times).toEqual([{ max: 1 }]);
  }, 60_000);
});
