import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startDaemon } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { accountsProjectionSource, appendAccountEvents, countAccountsApplied, expectSameReadModel } from '../helpers/accounts.js';
import { writeProject, type Project } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

const TOTAL = 8_000;
// Small batches, so that the batch forms are still catching up when the daemon is killed.
const BATCH_FORMS = ['sqlbatch', 'modulebatch'] as const;

const db = await createTestDatabase();
let project: Project;

beforeAll(async () => {
  project = await writeProject({
    'projd.yaml': 'projections:\n  batchSize: 20\nmetrics:\n  port: 0\n',
    'projections/perevent.mjs': accountsProjectionSource({ name: 'perevent', form: 'perEvent' }),
    'projections/sqlbatch.mjs': accountsProjectionSource({ name: 'sqlbatch', form: 'sqlBatch', batchSize: 4 }),
    'projections/modulebatch.mjs': accountsProjectionSource({ name: 'modulebatch', form: 'moduleBatch', batchSize: 4 }),
  });
  await appendAccountEvents(db.pool, { count: TOTAL, streams: 100 });
});

afterAll(async () => {
  await project?.cleanup();
});

describe('projd run with batch handlers, killed with SIGKILL mid-run', () => {
  it('resumes after each crash; every form ends with the per-event read model, each event applied once', async () => {
    const env = { DATABASE_URL: db.url };
    for (const fraction of [0.15, 0.4, 0.65]) {
      const daemon = startDaemon(['run'], { cwd: project.dir, env });
      // Killed once the faster batch form has applied this share: both are then mid-run.
      const furthest = async () => Math.max(...(await Promise.all(BATCH_FORMS.map((name) => countAccountsApplied(db.pool, name)))));
      await waitFor(async () => (await furthest()) >= TOTAL * fraction, {
        timeoutMs: 60_000,
        message: `a batch form applied ${fraction * 100}% of the events`,
      });
      await daemon.kill9();
      // The kill must land mid-run for the batch forms, or this test would prove nothing about crashes.
      for (const name of BATCH_FORMS) expect(await countAccountsApplied(db.pool, name)).toBeLessThan(TOTAL);
    }

    const daemon = startDaemon(['run'], { cwd: project.dir, env });
    for (const name of ['perevent', ...BATCH_FORMS]) {
      await waitFor(async () => (await countAccountsApplied(db.pool, name)) === TOTAL, {
        timeoutMs: 90_000,
        message: `${name} applied every event after the last restart`,
      });
    }
    expect(await daemon.stop()).toBe(0);
    await expectSameReadModel(db.pool, ['perevent', ...BATCH_FORMS], TOTAL);

    // A replay rebuilds through the same batch form, and tells its rate.
    const replay = await runCli(['replay', 'sqlbatch'], { cwd: project.dir, env });
    expect(replay.stderr).toBe('');
    expect(replay.code).toBe(0);
    // Not a terminal: JSON log lines, then the closing line with the rate.
    expect(replay.stdout.trimEnd().split('\n').at(-1)).toMatch(/^replayed sqlbatch: 8,000 events in \d+\.\ds \([\d,]+ events\/s\)$/);
    await expectSameReadModel(db.pool, ['perevent', ...BATCH_FORMS], TOTAL);
  }, 180_000);
});
