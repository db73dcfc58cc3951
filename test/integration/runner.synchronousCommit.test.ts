import os from 'node:os';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/loadConfig.js';
import { defineProjection } from '../../src/projection/defineProjection.js';
import { runBatch } from '../../src/runner/runBatch.js';
import { runnerSettings } from '../../src/settings.js';
import { appendEvents } from '../../src/store/appendEvents.js';
import { createPool } from '../../src/store/connect.js';
import { createTestDatabase } from '../helpers/database.js';
import { untilBelowGate } from '../helpers/snapshotGate.js';

const db = await createTestDatabase();
// The test server's own default is off, for speed: a batch that leaves it alone must show 'on'.
await db.pool.query(`alter database ${pg.escapeIdentifier(db.name)} set synchronous_commit = on`);
// One connection, so the statement after a batch runs on the batch's own session.
const runnerPool = createPool({ url: db.url, max: 1, connectTimeout: 10_000 });

afterAll(async () => {
  await runnerPool.end();
});

/** What each batch's handler saw as `synchronous_commit`, in order. */
const seen: string[] = [];

const probe = defineProjection({
  name: 'probe',
  version: 1,
  handlers: {
    'probe.sent': async (_event, handlerDb) => {
      const { rows } = await handlerDb.query<{ synchronous_commit: string }>('show synchronous_commit');
      seen.push(rows[0]!.synchronous_commit);
    },
  },
});

async function applyOne(synchronousCommit: boolean | undefined): Promise<string> {
  await appendEvents(db.pool, `probe-${seen.length}`, [{ type: 'probe.sent', data: {} }]);
  await untilBelowGate(db.pool);
  const result = await runBatch({
    pool: runnerPool,
    projection: probe,
    batchSize: 10,
    timeoutMs: 30_000,
    preparedStatements: false,
    ...(synchronousCommit === undefined ? {} : { synchronousCommit }),
  });
  expect(result).toMatchObject({ kind: 'done', applied: 1 });
  return seen.at(-1)!;
}

describe('a batch commit and the disk', () => {
  it('does not wait for the disk when synchronousCommit is off, for that transaction only', async () => {
    expect(await applyOne(false)).toBe('off');
    const { rows } = await runnerPool.query<{ synchronous_commit: string }>('show synchronous_commit');
    expect(rows[0]!.synchronous_commit).toBe('on');
  });

  it('waits for the disk when synchronousCommit is on, and by default in the library', async () => {
    expect(await applyOne(true)).toBe('on');
    expect(await applyOne(undefined)).toBe('on');
  });

  it("is off in the daemon's default config", async () => {
    const defaults = await loadConfig({ cwd: os.tmpdir(), env: { DATABASE_URL: db.url } });
    expect(runnerSettings(defaults, probe).synchronousCommit).toBe(false);
  });
});
