// projd itself, through its library API: createApp with the balances projection (its SQL, in
// the contender's own table), default configuration, timed from start() to caughtUp().

import pg from 'pg';
import { createApp, defineProjection } from '../../dist/index.js';
import { onCleanup, timeout } from '../cleanup.js';
import { benchConfig } from '../config.js';
import { CREDITED, DEBITED, OPENED, createTableSql, dropTable, statementsFor } from '../readModel.js';

export const PROJECTION_NAME = 'bench_balances';

// A runner that keeps failing never catches up; give up rather than hang the run.
const CATCH_UP_DEADLINE_MS = 15 * 60_000;
const STATE_CHECK_MS = 1000;

/**
 * projections/balances.ts over `table`, split into `partitions` parts. With `latencyTable`, each handler also records the
 * event's position and the time it was applied, in the same statement (no extra round trip).
 */
export function balancesProjection({ table, latencyTable, name = PROJECTION_NAME, partitions = 1 }) {
  const statements = statementsFor(table);
  const record = latencyTable
    ? `with applied as (insert into ${pg.escapeIdentifier(latencyTable)} (position, applied_at) values ($3, clock_timestamp())) `
    : '';
  const opened = record + statements.opened;
  const amount = record + statements.amount;
  return defineProjection({
    name,
    version: 1,
    partitions,
    setup: createTableSql(table),
    reset: `truncate ${pg.escapeIdentifier(table)}`,
    handlers: {
      [OPENED]: async (event, db) => {
        await db.query(opened, [event.streamId, event.data.owner, event.position]);
      },
      [CREDITED]: async (event, db) => {
        await db.query(amount, [event.streamId, event.data.amount, event.position]);
      },
      [DEBITED]: async (event, db) => {
        await db.query(amount, [event.streamId, -event.data.amount, event.position]);
      },
    },
  });
}

/** Starts an app running `projection`; the caller stops it (also registered for cleanup). */
export function startApp(config, projection) {
  const app = createApp(config, { projections: [projection] });
  const stop = onCleanup(() => Promise.race([app.stop(), timeout(10_000)]));
  return { app, stop };
}

/** Resolves once caught up; rejects when the runner keeps retrying or the deadline passes. */
export async function waitForCatchUp(app) {
  let done = false;
  const watch = (async () => {
    const deadline = performance.now() + CATCH_UP_DEADLINE_MS;
    while (!done) {
      await timeout(STATE_CHECK_MS);
      const [snapshot] = app.projections();
      if (done) return;
      if (snapshot && ['retrying', 'failed', 'stopped'].includes(snapshot.state)) {
        throw new Error(`projd: projection ${snapshot.name} is ${snapshot.state} instead of catching up`);
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

export default {
  key: 'projd',
  label: (options) => `projd (batch ${options.batchSize})`,
  table: 'bench_balances_projd',
  async run({ url, admin, table, batchSize }) {
    await dropTable(admin, table);
    await admin.query('delete from projd.checkpoints where projection = $1', [PROJECTION_NAME]);
    const config = await benchConfig(url, { batchSize });
    const { app, stop } = startApp(config, balancesProjection({ table }));
    try {
      const started = performance.now();
      await app.start();
      await waitForCatchUp(app);
      return { seconds: (performance.now() - started) / 1000 };
    } finally {
      await stop();
    }
  },
};
