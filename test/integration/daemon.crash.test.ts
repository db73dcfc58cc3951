import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { appendLedgerEvents, countApplied, expectLedgerExact, ledgerProjectionSource } from '../helpers/ledger.js';
import { writeProject } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

const TOTAL = 16_000;

const db = await createTestDatabase();
let project: Awaited<ReturnType<typeof writeProject>>;

beforeAll(async () => {
  // Small batches make catch-up take long enough to be killed in the middle of it.
  project = await writeProject({
    'projd.yaml': 'projections:\n  batchSize: 20\nmetrics:\n  port: 0\n',
    'projections/ledger.ts': await ledgerProjectionSource(),
  });
  await appendLedgerEvents(db.pool, { count: TOTAL, streams: 200 });
});

afterAll(async () => {
  await project?.cleanup();
});

describe('projd run killed with SIGKILL during catch-up', () => {
  it('resumes after each crash and ends with a read model equal to SQL over the events', async () => {
    const env = { DATABASE_URL: db.url };
    for (const fraction of [0.15, 0.4, 0.65]) {
      const daemon = startDaemon(['run'], { cwd: project.dir, env });
      await waitFor(async () => (await countApplied(db.pool)) >= TOTAL * fraction, {
        timeoutMs: 60_000,
        message: `daemon applied ${fraction * 100}% of the events`,
      });
      await daemon.kill9();
      // The kill must land mid catch-up, or this test would prove nothing about crashes.
      expect(await countApplied(db.pool)).toBeLessThan(TOTAL);
    }

    const daemon = startDaemon(['run'], { cwd: project.dir, env });
    await waitFor(async () => (await countApplied(db.pool)) === TOTAL, {
      timeoutMs: 90_000,
      message: 'every event applied after the last restart',
    });
    expect(await daemon.stop()).toBe(0);
    await expectLedgerExact(db.pool);
  }, 120_000);
});
