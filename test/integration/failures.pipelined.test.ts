import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/loadConfig.js';
import type { ResolvedConfig } from '../../src/config/types.js';
import { compileYamlProjection } from '../../src/projection/compileYamlProjection.js';
import { startDaemon } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { appendItems, appliedStats, positionsOf } from '../helpers/items.js';
import { writeProject } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

const parkDb = await createTestDatabase();
const stopDb = await createTestDatabase();
const timeoutDb = await createTestDatabase();
const ignoredDb = await createTestDatabase();

let app: App | undefined;
afterEach(async () => {
  await app?.stop();
  app = undefined;
});

/**
 * A YAML projection, so its statements go out in pipeline. Its first statement fails for a
 * poisoned event (division by zero) or sleeps `sleepSeconds` on it; the second counts the event.
 */
function pipelinedItems(name: string, { onError = 'park', sleepSeconds = 0 } = {}) {
  const poisoned = "(:data->>'poison') is not null";
  const first =
    sleepSeconds > 0
      ? `select pg_sleep(case when ${poisoned} then ${sleepSeconds} else 0 end)`
      : `select 1 / (case when ${poisoned} then 0 else 1 end)`;
  return compileYamlProjection(
    `name: ${name}
version: 1
onError: ${onError}
setup: create table if not exists ${name}_applied (position bigint primary key, times integer not null default 1)
reset: truncate ${name}_applied
handlers:
  item.added:
    - ${first}
    - insert into ${name}_applied (position) values (:position)
      on conflict (position) do update set times = ${name}_applied.times + 1
`,
    `${name}.yaml`,
  );
}

async function appConfig(db: TestDatabase, changes: Partial<ResolvedConfig['projections']>): Promise<ResolvedConfig> {
  const config = await loadConfig({ env: { DATABASE_URL: db.url }, cwd: process.cwd() });
  config.metrics.port = 0;
  config.projections = { ...config.projections, ...changes };
  return config;
}

/** The app's log lines, kept in memory. */
function memoryLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { logger, lines };
}

async function failedEvents(db: TestDatabase) {
  const { rows } = await db.pool.query<{ id: string; position: string; error_code: string | null; attempts: number }>(
    'select id::text, position::text, error_code, attempts from projd.failed_events order by position',
  );
  return rows;
}

describe('a poison event among pipelined statements', () => {
  it('onError park: parks exactly that event, and applies every other one once', async () => {
    await appendItems(parkDb.pool, 500, { 123: 'database' });
    const [poison] = await positionsOf(parkDb.pool, [123]);
    app = createApp(await appConfig(parkDb, { batchSize: 100, maxAttempts: 2 }), {
      projections: [pipelinedItems('parking')],
    });
    await app.start();
    await app.caughtUp();

    expect(await appliedStats(parkDb.pool, 'parking')).toEqual({ count: 499, maxTimes: 1 });
    expect(await failedEvents(parkDb)).toEqual([{ id: expect.any(String), position: poison, error_code: '22012', attempts: 2 }]);
    const { rows } = await parkDb.pool.query('select 1 from parking_applied where position = $1', [poison]);
    expect(rows).toEqual([]);
  }, 60_000);

  it('onError stop: halts right before that event, with every event before it applied once', async () => {
    await appendItems(stopDb.pool, 300, { 140: 'database' });
    const [poison] = await positionsOf(stopDb.pool, [140]);
    app = createApp(await appConfig(stopDb, { batchSize: 100, maxAttempts: 1 }), {
      projections: [pipelinedItems('halting', { onError: 'stop' })],
    });
    await app.start();
    await waitFor(() => app!.projections()[0]!.state === 'failed', { timeoutMs: 30_000, message: 'the projection halted' });

    const { rows } = await stopDb.pool.query<{ missing: string; beyond: string }>(
      `select count(*) filter (where a.position is null and e.position < $1) as missing,
              count(*) filter (where a.position is not null and e.position >= $1) as beyond
         from projd.events e left join halting_applied a using (position)`,
      [poison],
    );
    expect(rows[0]).toEqual({ missing: '0', beyond: '0' });
    expect(await appliedStats(stopDb.pool, 'halting')).toEqual({ count: 140, maxTimes: 1 });
    const [blocking] = await failedEvents(stopDb);
    expect(blocking).toMatchObject({ position: poison, error_code: '22012' });
    const { rows: checkpoint } = await stopDb.pool.query(
      "select blocked_by::text as blocked_by from projd.checkpoints where projection = 'halting'",
    );
    expect(checkpoint[0]).toEqual({ blocked_by: blocking!.id });
  }, 60_000);
});

describe('the batch timeout with statements in flight', () => {
  it('blames the event whose statement the server was running, narrows down to it and parks it', async () => {
    await appendItems(timeoutDb.pool, 200, { 130: 'database' });
    const [slow] = await positionsOf(timeoutDb.pool, [130]);
    const { logger, lines } = memoryLogger();
    // Well past what a batch of ordinary events takes on a busy machine, well short of the sleep.
    app = createApp(await appConfig(timeoutDb, { batchSize: 50, batchTimeout: 2000, maxTransientAttempts: 2 }), {
      projections: [pipelinedItems('sleepy', { sleepSeconds: 5 })],
      logger,
    });
    await app.start();
    await app.caughtUp();

    expect(await appliedStats(timeoutDb.pool, 'sleepy')).toEqual({ count: 199, maxTimes: 1 });
    expect(await failedEvents(timeoutDb)).toEqual([{ id: expect.any(String), position: slow, error_code: '57014', attempts: 2 }]);
    // Each failed pass named the slow event, never one queued behind it.
    const blamed = lines.filter((line) => String(line.msg).startsWith('batch.failed')).map((line) => line.position);
    expect(blamed.length).toBeGreaterThanOrEqual(2);
    expect(new Set(blamed)).toEqual(new Set([slow]));
  }, 60_000);
});

describe('a module handler that ignores a statement that fails', () => {
  it('does not crash the daemon: the event is parked and the others applied', async () => {
    const project = await writeProject({
      'projd.yaml': 'projections:\n  batchSize: 100\n  maxAttempts: 1\nmetrics:\n  port: 0\n',
      // Neither statement is awaited, and the handler is not async: the promises are dropped.
      'projections/careless.ts': `import { defineProjection } from 'projd';
export default defineProjection({
  name: 'careless',
  version: 1,
  setup: 'create table if not exists careless_applied (position bigint primary key, times integer not null default 1)',
  handlers: {
    'item.added': (event, db) => {
      if (event.data.poison) db.query('select 1 / 0');
      db.query('insert into careless_applied (position) values ($1)', [event.position]);
    },
  },
});
`,
    });
    try {
      await appendItems(ignoredDb.pool, 300, { 42: 'database' });
      const [poison] = await positionsOf(ignoredDb.pool, [42]);
      const daemon = startDaemon(['run'], { cwd: project.dir, env: { DATABASE_URL: ignoredDb.url } });
      await daemon.waitForLog((line) => line.msg === 'event.parked', 30_000);
      await waitFor(async () => (await appliedStats(ignoredDb.pool, 'careless')).count === 299, {
        timeoutMs: 30_000,
        message: 'the other 299 events applied',
      });
      expect(await failedEvents(ignoredDb)).toEqual([{ id: expect.any(String), position: poison, error_code: '22012', attempts: 1 }]);
      expect(await daemon.stop()).toBe(0);
      expect(daemon.stderr()).toBe('');
    } finally {
      await project.cleanup();
    }
  }, 60_000);
});
