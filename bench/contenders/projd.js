// projd itself, through its library API: createApp with the balances projection (its SQL, in
// the contender's own table), default configuration, timed from start() to caughtUp(). The
// projection comes in each of the forms projd offers (per-event handlers awaited, SQL batch
// handler, module batch handler, partitions); each form is a contender of its own (projdForms.js).

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createApp, defineProjection } from '../../dist/index.js';
import { onCleanup, timeout } from '../cleanup.js';
import { benchConfig } from '../config.js';
import {
  CREDITED,
  DEBITED,
  OPENED,
  batchSql,
  createTableSql,
  dropTable,
  reduceBalances,
  statementsFor,
  unnestUpsertSql,
} from '../readModel.js';

export const BALANCES_TYPES = [OPENED, CREDITED, DEBITED];

// A runner that keeps failing never catches up; give up rather than hang the run.
const CATCH_UP_DEADLINE_MS = 15 * 60_000;
const STATE_CHECK_MS = 1000;

/**
 * The definition of projections/balances.ts over `table`, in one of projd's forms:
 * - `perEvent`: a handler per event type, each awaiting its upsert (the example queues it instead: this is the awaited form);
 * - `sqlBatch`: one SQL statement per batch over `projd.batch_events()`;
 * - `moduleBatch`: `handleBatch` reduces the batch per account and writes it in one unnest upsert.
 * `partitions`, when given, splits the projection by stream.
 */
export function balancesDefinition({ name, table, form = 'perEvent', partitions }) {
  const common = {
    name,
    version: 1,
    setup: createTableSql(table),
    reset: `truncate ${pg.escapeIdentifier(table)}`,
    ...(partitions === undefined ? {} : { partitions }),
  };
  switch (form) {
    case 'perEvent': {
      const statements = statementsFor(table);
      return {
        ...common,
        handlers: {
          [OPENED]: async (event, db) => {
            await db.query(statements.opened, [event.streamId, event.data.owner, event.position]);
          },
          [CREDITED]: async (event, db) => {
            await db.query(statements.amount, [event.streamId, event.data.amount, event.position]);
          },
          [DEBITED]: async (event, db) => {
            await db.query(statements.amount, [event.streamId, -event.data.amount, event.position]);
          },
        },
      };
    }
    case 'sqlBatch':
      return { ...common, eventTypes: BALANCES_TYPES, batch: batchSql(table) };
    case 'moduleBatch': {
      const upsert = unnestUpsertSql(table);
      return {
        ...common,
        eventTypes: BALANCES_TYPES,
        handleBatch: async (events, db) => {
          await db.query(upsert, reduceBalances(events));
        },
      };
    }
    default:
      throw new Error(`unknown form ${form}`);
  }
}

/** Starts an app (projections given, or loaded from `config.projections.dir`); the caller stops it (also registered for cleanup). */
export function startApp(config, projections) {
  const app = createApp(config, projections ? { projections } : {});
  const stop = onCleanup(() => Promise.race([app.stop(), timeout(10_000)]));
  return { app, stop };
}

/** Resolves once caught up; rejects when a runner keeps retrying or the deadline passes. */
export async function waitForCatchUp(app) {
  let done = false;
  const watch = (async () => {
    const deadline = performance.now() + CATCH_UP_DEADLINE_MS;
    while (!done) {
      await timeout(STATE_CHECK_MS);
      if (done) return;
      for (const snapshot of app.projections()) {
        if (['retrying', 'failed', 'stopped'].includes(snapshot.state)) {
          throw new Error(`projd: projection ${snapshot.name} is ${snapshot.state} instead of catching up`);
        }
      }
      if (performance.now() > deadline) throw new Error(`projd did not catch up within ${CATCH_UP_DEADLINE_MS / 1000} s`);
    }
  })();
  try {
    await Promise.race([app.caughtUp(), watch]);
  } finally {
    done = true;
  }
}

/**
 * One timed catch-up from position 0 into a fresh `table`: with `projection` given, or with the
 * projections of the folder `dir`, loaded as `projd run` loads them.
 */
export async function timeCatchUp({ url, admin, table, batchSize, projection, dir }) {
  await dropTable(admin, table);
  const config = await benchConfig(url, { batchSize, dir });
  const { app, stop } = startApp(config, projection && [projection]);
  try {
    const started = performance.now();
    await app.start();
    await waitForCatchUp(app);
    return { seconds: (performance.now() - started) / 1000 };
  } finally {
    await stop();
  }
}

/** A temporary folder holding `files` ({ name: text }), removed at cleanup; its path. */
export async function projectionsFolder(files) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'projd-bench-projections-'));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text);
  return dir;
}

/** A projection name of its own for each contender and round: every run starts from nothing. */
export function projectionName(key, round) {
  return `bench_${key.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`)}_r${round}`;
}

export default {
  key: 'projd',
  label: (options) => `projd per-event, awaited (batch ${options.batchSize})`,
  table: 'bench_balances_projd',
  run: ({ round, table, ...context }) =>
    timeCatchUp({ ...context, table, projection: defineProjection(balancesDefinition({ name: projectionName('projd', round), table })) }),
};
