import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/loadConfig.js';
import { silentLogger } from '../../src/log.js';
import { loadProjectionFile, loadProjections } from '../../src/projection/loadProjections.js';
import { retryFailedEvent } from '../../src/runner/resolveFailedEvents.js';
import {
  accountsProjectionSource,
  appendAccountEvents,
  countAccountsApplied,
  expectSameReadModel,
  type AccountsForm,
} from '../helpers/accounts.js';
import { createTestDatabase } from '../helpers/database.js';
import { writeProject, type Project } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

// A poison event inside a batch-handled batch: each form ends with the read model of the
// per-event handlers, parks (or halts on) exactly the poison event, and records where the
// batch handler first failed.
const TOTAL = 3_000;
const POISON = [1_234, 2_345]; // indexes of the poison events among the appended ones
const FORMS: AccountsForm[] = ['perEvent', 'sqlBatch', 'sqlBatchWithHandlers', 'moduleBatch', 'moduleBatchWithHandlers'];
const names = (policy: 'park' | 'stop') => FORMS.map((form) => `${form.toLowerCase()}_${policy}`);

const db = await createTestDatabase();
let project: Project;
let app: App;
let poisonPositions: string[];

beforeAll(async () => {
  const files: Record<string, string> = {};
  for (const onError of ['park', 'stop'] as const) {
    for (const form of FORMS) {
      const name = `${form.toLowerCase()}_${onError}`;
      files[`projections/${name}.mjs`] = accountsProjectionSource({ name, form, onError, maxAttempts: 2 });
    }
  }
  project = await writeProject(files);
  await appendAccountEvents(db.pool, { count: TOTAL, streams: 40, poison: POISON });
  const { rows } = await db.pool.query<{ position: string }>(`select position::text from projd.events where data ? 'poison' order by position`);
  poisonPositions = rows.map((row) => row.position);

  const config = await loadConfig({ env: { DATABASE_URL: db.url }, cwd: process.cwd() });
  config.projections.batchSize = 500;
  config.projections.pollInterval = 50;
  config.metrics.port = 0;
  app = createApp(config, { projections: await loadProjections(project.path('projections')), logger: silentLogger() });
  await app.start();
}, 60_000);

afterAll(async () => {
  await app?.stop();
  await project?.cleanup();
});

async function parked(name: string) {
  const { rows } = await db.pool.query<{ position: string; error_message: string; attempts: number; status: string }>(
    `select position::text, error_message, attempts, status from projd.failed_events where projection = $1 order by position`,
    [name],
  );
  return rows;
}

describe('a poison event in a batch-handled batch', () => {
  it('onError park: parks exactly the poison events, applies the rest once, same read model as per event', async () => {
    for (const name of names('park')) {
      await waitFor(async () => (await countAccountsApplied(db.pool, name)) === TOTAL - POISON.length, {
        timeoutMs: 60_000,
        message: `${name} applied every good event`,
      });
      await waitFor(async () => (await parked(name)).length === POISON.length, { timeoutMs: 10_000, message: `${name} parked` });
    }
    await expectSameReadModel(db.pool, names('park'), TOTAL - POISON.length);

    for (const name of names('park')) {
      const rows = await parked(name);
      expect(rows.map(({ position, attempts, status }) => ({ position, attempts, status }))).toEqual(
        poisonPositions.map((position) => ({ position, attempts: 2, status: 'parked' })),
      );
      for (const row of rows) {
        if (name.startsWith('perevent')) expect(row.error_message).toBe('division by zero');
        else expect(row.error_message).toMatch(/^division by zero \(batch handler failed first on the batch of \d+ events from position \d+ to \d+\)$/);
      }
    }
  }, 90_000);

  it('failed retry applies a parked event through the batch form, as a batch of one', async () => {
    const project = await writeProject(
      Object.fromEntries(
        (['sqlBatch', 'moduleBatch'] as const).map((form) => {
          const name = `${form.toLowerCase()}_park`;
          return [`projections/${name}.mjs`, accountsProjectionSource({ name, form, onError: 'park', cured: true })];
        }),
      ),
    );
    try {
      for (const name of ['sqlbatch_park', 'modulebatch_park']) {
        const cured = await loadProjectionFile(project.path(`projections/${name}.mjs`));
        const { rows } = await db.pool.query<{ id: string }>(
          `select id::text from projd.failed_events where projection = $1 and status = 'parked' order by position limit 1`,
          [name],
        );
        const outcome = await retryFailedEvent(db.pool, new Map([[name, cured]]), BigInt(rows[0]!.id));
        expect(outcome.outcome).toBe('retried');
        expect(await countAccountsApplied(db.pool, name)).toBe(TOTAL - POISON.length + 1);
        const { rows: applied } = await db.pool.query(`select times from ${name}_applied where position = $1`, [poisonPositions[0]]);
        expect(applied).toEqual([{ times: 1 }]);
      }
    } finally {
      await project.cleanup();
    }
  });

  it('onError stop: halts right before the first poison event, with the read model of the events before it', async () => {
    for (const name of names('stop')) {
      await waitFor(() => app.projections().find((projection) => projection.name === name)?.state === 'failed', {
        timeoutMs: 60_000,
        message: `${name} halted`,
      });
    }
    await expectSameReadModel(db.pool, names('stop'), POISON[0]!);
    for (const name of names('stop')) {
      const rows = await parked(name);
      expect(rows.map(({ position, status }) => ({ position, status }))).toEqual([{ position: poisonPositions[0], status: 'parked' }]);
      const { rows: checkpoint } = await db.pool.query<{ blocked: boolean }>(
        'select blocked_by is not null as blocked from projd.checkpoints where projection = $1',
        [name],
      );
      expect(checkpoint).toEqual([{ blocked: true }]);
    }
  }, 90_000);
});
