import { afterEach, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/loadConfig.js';
import { silentLogger } from '../../src/log.js';
import { defineProjection } from '../../src/projection/defineProjection.js';
import { listFailedEvents } from '../../src/store/failedEvents.js';
import { readStatusReport } from '../../src/status/readStatusReport.js';
import { createTestDatabase } from '../helpers/database.js';
import { appendItems, appliedStats, positionsOf } from '../helpers/items.js';
import { waitFor } from '../helpers/waitFor.js';

const db = await createTestDatabase();
const POISON_N = 450; // of 1,001 events: batches of 100 meet it in the middle of one

/** Counts each event it applies, after running `failOn` for the poison event. */
function recurringFailure(name: string, failOn: string, onError: 'park' | 'stop') {
  return defineProjection({
    name,
    version: 1,
    onError,
    setup: `create table if not exists ${name}_applied (position bigint primary key, times integer not null default 1)`,
    handlers: {
      'item.added': async (event, handlerDb) => {
        if ((event.data as { n: number }).n === POISON_N) await handlerDb.query(failOn);
        await handlerDb.query(
          `insert into ${name}_applied (position) values ($1)
           on conflict (position) do update set times = ${name}_applied.times + 1`,
          [event.position],
        );
      },
    },
  });
}

// Outlives the batch timeout on every try.
const slow = recurringFailure('slow', 'select pg_sleep(3)', 'park');
// A serialization failure the server raises on every try.
const conflicted = recurringFailure(
  'conflicted',
  `do $$ begin raise exception 'could not serialize access' using errcode = '40001'; end $$`,
  'stop',
);
const projections = [slow, conflicted];

let app: App | undefined;
afterEach(async () => {
  await app?.stop();
});

const statusOf = async (name: string) => {
  const report = await readStatusReport(db.pool, projections, { pollInterval: 5_000, stallAfter: 5_000 });
  return report.projections.find((row) => row.name === name)!;
};

describe('a transient failure that keeps recurring on one event', () => {
  it('is parked or stops the projection after maxTransientAttempts tries alone, and status shows it meanwhile', async () => {
    await appendItems(db.pool, 1_001);
    const [poisonPosition] = await positionsOf(db.pool, [POISON_N]);
    const config = await loadConfig({ env: { DATABASE_URL: db.url }, cwd: process.cwd() });
    Object.assign(config.projections, { batchSize: 100, batchTimeout: 1_000, maxAttempts: 2, maxTransientAttempts: 3 });
    config.metrics.port = 0;
    app = createApp(config, { projections, logger: silentLogger() });
    await app.start();

    // While the daemon retries, status reads the error it recorded and a projection at work.
    const retrying = await waitFor(
      async () => {
        const row = await statusOf('slow');
        return row.lastError !== null && row;
      },
      { timeoutMs: 30_000, intervalMs: 20, message: "the retried timeout recorded on 'slow'" },
    );
    expect(retrying).toMatchObject({ state: 'catching_up', lastError: expect.stringMatching(/batch cancelled after 1000 ms/) });

    await waitFor(async () => (await appliedStats(db.pool, 'slow')).count === 1_000, {
      timeoutMs: 60_000,
      message: "'slow' applied the 1,000 events around the one that always times out",
    });
    await waitFor(async () => (await statusOf('conflicted')).state === 'failed', {
      timeoutMs: 30_000,
      message: "'conflicted' stopped at the event that always fails to serialize",
    });
    expect(await appliedStats(db.pool, 'slow')).toEqual({ count: 1_000, maxTimes: 1 });
    expect(await appliedStats(db.pool, 'conflicted')).toEqual({ count: POISON_N, maxTimes: 1 });

    const failed = await listFailedEvents(db.pool);
    expect(failed.map(({ projection, position, errorCode, attempts, status }) => ({
      projection, position: String(position), errorCode, attempts, status,
    }))).toEqual([
      { projection: 'conflicted', position: poisonPosition, errorCode: '40001', attempts: 3, status: 'parked' },
      { projection: 'slow', position: poisonPosition, errorCode: '57014', attempts: 3, status: 'parked' },
    ]);
    // Parked, 'slow' went on and cleared its error; 'conflicted' is halted with it.
    await waitFor(async () => (await statusOf('slow')).state === 'live', { message: "'slow' live again" });
    expect(await statusOf('slow')).toMatchObject({ lastError: null, failedEvents: 1 });
    expect(await statusOf('conflicted')).toMatchObject({
      state: 'failed',
      blockedBy: String(failed[0]!.id),
      lastError: 'could not serialize access',
    });
  }, 120_000);
});
