import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import type { Projection } from '../../src/projection/types.js';
import { createRunner } from '../../src/runner/createRunner.js';
import { appendEvents } from '../../src/store/appendEvents.js';
import { createPool } from '../../src/store/connect.js';
import { createTestDatabase } from '../helpers/database.js';
import { countRoundTrips } from '../helpers/roundTrips.js';
import { queuedVisits, visitCounts } from '../helpers/visits.js';
import { waitFor } from '../helpers/waitFor.js';

const db = await createTestDatabase();
const pools: pg.Pool[] = [];

afterAll(async () => {
  await Promise.all(pools.map((pool) => pool.end()));
});

/** The batch reads a runner's connections sent, each with whether it rode in a round trip already under way. */
function countingPool(): { pool: pg.Pool; reads: { rodeAlong: boolean }[] } {
  const reads: { rodeAlong: boolean }[] = [];
  const pool = createPool({ url: db.url, max: 2, connectTimeout: 10_000 });
  pools.push(pool);
  countRoundTrips(pool, (text, rodeAlong) => {
    // Both batch reads (events, or the bounds for a SQL batch) scan to the gate's end.
    if (text.includes('scan_end')) reads.push({ rodeAlong });
  });
  return { pool, reads };
}

const perEvent = queuedVisits('early_visits');
const sqlBatch = visitCounts('early_counts');

describe.each([
  ['per event', perEvent, 'select count(*)::int as n from early_visits'],
  ['SQL batch', sqlBatch, 'select coalesce(sum(visits), 0)::int as n from early_counts'],
] as [string, Projection, string][])('a caught-up runner (%s)', (_label, projection, countSql) => {
  it("sends each batch's read with the batch's opening, in its round trip", async () => {
    const { pool, reads } = countingPool();
    const runner = createRunner({
      pool,
      projection,
      batchSize: 100,
      pollInterval: 60_000,
      batchTimeout: 30_000,
      onError: 'park',
      maxAttempts: 3,
      maxTransientAttempts: 3,
      preparedStatements: true,
      synchronousCommit: false,
      stallAfter: 60_000,
      logger: silentLogger(),
    });
    const applied = async () => (await db.pool.query<{ n: number }>(countSql)).rows[0]!.n;
    runner.start();
    try {
      await runner.caughtUp;
      // The other projection's visits, appended before, count here too.
      const before = await applied();
      const from = reads.length;
      for (let visit = 1; visit <= 3; visit++) {
        await appendEvents(db.pool, `${projection.name}-${visit}`, [{ type: 'page.visited', data: {} }]);
        runner.wake();
        await waitFor(async () => (await applied()) === before + visit, { timeoutMs: 10_000, message: `visit ${visit} applied` });
      }
      const live = reads.slice(from);
      expect(live.length).toBeGreaterThanOrEqual(3);
      expect(live.filter((read) => !read.rodeAlong)).toEqual([]);
    } finally {
      await runner.stop();
    }
  });
});
