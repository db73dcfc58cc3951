import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { startEmbeddedPostgres } from '../../scripts/embeddedPostgres.js';
import { migrate } from '../../src/store/migrate.js';
import { startDaemon } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { appendItems, appliedStats, itemsProjectionSource } from '../helpers/items.js';
import { appendLedgerEvents, countApplied, expectLedgerExact, ledgerProjectionSource } from '../helpers/ledger.js';
import { writeProject } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

const db = await createTestDatabase();

describe('transient failures', () => {
  it('retries serialization failures, deadlocks and timed-out batches, and parks nothing', async () => {
    // The server raises these errors from inside the handler's statement, on a few calls
    // counted by a sequence (sequences ignore rollbacks), so every retry gets further.
    await db.pool.query(`
      create sequence flaky_calls;
      create function flaky() returns void language plpgsql as $$
      declare n bigint := nextval('flaky_calls');
      begin
        if n in (3, 40) then raise exception 'serialization failure on call %', n using errcode = '40001'; end if;
        if n = 90 then raise exception 'deadlock on call %', n using errcode = '40P01'; end if;
        if n = 150 then perform pg_sleep(5); end if; -- outlives the 1 s batch timeout
      end $$`);
    // maxAttempts 1: anything taken for deterministic would be parked at its first failure.
    const project = await writeProject({
      'projd.yaml': 'projections:\n  batchSize: 25\n  batchTimeout: 1s\n  maxAttempts: 1\nmetrics:\n  port: 0\n',
      'projections/flaky.ts': itemsProjectionSource({ name: 'flaky', poisoned: false, extraSql: 'select flaky()' }),
    });
    try {
      await appendItems(db.pool, 300);
      const daemon = startDaemon(['run'], { cwd: project.dir, env: { DATABASE_URL: db.url } });
      await waitFor(async () => (await appliedStats(db.pool, 'flaky')).count === 300, {
        timeoutMs: 60_000,
        message: 'all 300 events applied despite the transient failures',
      });
      expect(await daemon.stop()).toBe(0);

      expect(await appliedStats(db.pool, 'flaky')).toEqual({ count: 300, maxTimes: 1 });
      const { rows } = await db.pool.query('select count(*)::int as n from projd.failed_events');
      expect(rows[0]).toEqual({ n: 0 });
      const retriedCodes = daemon
        .logs()
        .filter((line) => typeof line.msg === 'string' && line.msg.startsWith('batch.failed'))
        .map((line) => (line.err as { code?: string } | undefined)?.code);
      expect(new Set(retriedCodes)).toEqual(new Set(['40001', '40P01', '57014']));
    } finally {
      await project.cleanup();
    }
  }, 120_000);

  it('keeps running through a PostgreSQL restart during catch-up and resumes by itself', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'projd-test-restart-'));
    let server = await startEmbeddedPostgres({ dataDir, persistent: true });
    const pool = new pg.Pool({ connectionString: server.url, max: 4 });
    pool.on('error', () => undefined); // idle clients die with the server; the pool makes new ones
    const project = await writeProject({
      'projd.yaml': 'projections:\n  batchSize: 20\nmetrics:\n  port: 0\n',
      'projections/ledger.ts': await ledgerProjectionSource(),
    });
    try {
      await migrate(pool);
      await appendLedgerEvents(pool, { count: 8_000, streams: 100 });
      const daemon = startDaemon(['run'], { cwd: project.dir, env: { DATABASE_URL: server.url } });
      await waitFor(async () => (await countApplied(pool)) >= 2_000, { timeoutMs: 60_000, message: 'catch-up under way' });

      const port = server.port;
      await server.stop();
      await daemon.waitForLog((line) => typeof line.msg === 'string' && line.msg.startsWith('batch.failed'), 30_000);
      server = await startEmbeddedPostgres({ dataDir, persistent: true, port });
      expect(server.port).toBe(port);

      await waitFor(async () => (await countApplied(pool)) === 8_000, {
        timeoutMs: 90_000,
        message: 'catch-up finished after the restart',
      });
      expect(await daemon.stop()).toBe(0);
      await expectLedgerExact(pool);
      const { rows } = await pool.query('select count(*)::int as n from projd.failed_events');
      expect(rows[0]).toEqual({ n: 0 });
    } finally {
      await project.cleanup();
      await pool.end().catch(() => undefined);
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 180_000);
});
