// A slow projection beside a fast one: does the slow one's batch hold the fast one back? Both
// run in one daemon, loaded from a folder as `projd run` loads them, and read only
// `neighbour.ticked` events, so neither has the store to catch up first. The fast projection
// records each event; the slow one records its batch and then works SLOW_BATCH_MS more in the
// same transaction (a heavy read model), so it holds a transaction id that long, batch after
// batch. A writer appends RATE single-event transactions a second. The fast projection's
// latency, from an event's commit to the commit of the batch that applied it, is measured alone
// and then beside the slow one, in the same run: the ratio says what the neighbour costs it.

import { setTimeout as sleep } from 'node:timers/promises';
import { benchConfig } from './config.js';
import { connect } from './database.js';
import { projectionsFolder, startApp, waitForCatchUp } from './contenders/projd.js';

const TYPE = 'neighbour.ticked';
const STREAMS = 100;
const FAST = 'bench_neighbour_fast';
const SLOW = 'bench_neighbour_slow';
const SLOW_BATCH_MS = 50;
const RATE = 100;
const SECONDS = 5;
const APPLY_DEADLINE_MS = 30_000;

const fastModule = `import { defineProjection } from 'projd';

export default defineProjection({
  name: '${FAST}',
  version: 1,
  setup: 'create table if not exists ${FAST} (position bigint primary key)',
  reset: 'truncate ${FAST}',
  handlers: {
    '${TYPE}': async (event, db) => {
      await db.query('insert into ${FAST} (position) values ($1)', [event.position]);
    },
  },
});
`;

const slowModule = `import { defineProjection } from 'projd';

export default defineProjection({
  name: '${SLOW}',
  version: 1,
  setup: 'create table if not exists ${SLOW} (last_position bigint not null)',
  reset: 'truncate ${SLOW}',
  eventTypes: ['${TYPE}'],
  handleBatch: async (events, db) => {
    await db.query('insert into ${SLOW} (last_position) values ($1)', [events.at(-1).position]);
    await db.query('select pg_sleep($1)', [${SLOW_BATCH_MS / 1000}]);
  },
});
`;

/** Commit to read model, per event, on the server's clock (commit timestamps). $1: the head before the phase. */
const latencySql = /* sql */ `
  with samples as (
    select (extract(epoch from pg_xact_commit_timestamp(f.xmin) - pg_xact_commit_timestamp(e.xmin)) * 1000)::float8 as ms
      from ${FAST} f join projd.events e on e.position = f.position
     where f.position > $1
  )
  select count(*)::int as events,
         percentile_disc(0.5) within group (order by ms) as p50,
         percentile_disc(0.99) within group (order by ms) as p99,
         max(ms) as max
    from samples`;

export async function measureSlowNeighbour({ url, admin, batchSize, commitTimestamps, progress }) {
  if (!commitTimestamps) return { skipped: 'the server does not track commit timestamps' };
  // Stream versions go on from one phase to the next.
  const streams = Array.from({ length: STREAMS }, (_, index) => ({ streamId: `neighbour-${index}`, version: 0 }));
  const phases = {};
  for (const [key, files] of [
    ['alone', { [`${FAST}.mjs`]: fastModule }],
    ['besideSlow', { [`${FAST}.mjs`]: fastModule, [`${SLOW}.mjs`]: slowModule }],
  ]) {
    for (const table of [FAST, SLOW]) await admin.query(`drop table if exists ${table}`);
    await admin.query('delete from projd.checkpoints where projection = any($1)', [[FAST, SLOW]]);
    progress(`slow neighbour: ${FAST} ${key === 'alone' ? 'alone' : `beside ${SLOW} (${SLOW_BATCH_MS} ms a batch)`}, ${RATE} events/s for ${SECONDS} s`);
    const dir = await projectionsFolder(files);
    const config = await benchConfig(url, { batchSize, dir });
    const { app, stop } = startApp(config);
    try {
      await app.start();
      await waitForCatchUp(app);
      const { rows: [{ head }] } = await admin.query('select max(position)::text as head from projd.events');
      const written = await writeSteadily(url, streams);
      await waitForApplied(admin, head, written);
      const { rows: [row] } = await admin.query(latencySql, [head]);
      phases[key] = { events: row.events, latencyMs: { p50: row.p50, p99: row.p99, max: row.max } };
    } finally {
      await stop();
    }
  }
  return {
    rate: RATE,
    seconds: SECONDS,
    slowBatchMs: SLOW_BATCH_MS,
    ...phases,
    p99Ratio: phases.besideSlow.latencyMs.p99 / phases.alone.latencyMs.p99,
  };
}

/** RATE single-event transactions a second for SECONDS, on one connection; returns how many. */
async function writeSteadily(url, streams) {
  const client = await connect(url);
  try {
    const total = RATE * SECONDS;
    const started = performance.now();
    for (let i = 0; i < total; i++) {
      const wait = started + (i * 1000) / RATE - performance.now();
      if (wait > 1) await sleep(wait);
      const stream = streams[i % streams.length];
      stream.version += 1;
      await client.query('insert into projd.events (stream_id, stream_version, type, data) values ($1, $2, $3, $4)', [
        stream.streamId,
        stream.version,
        TYPE,
        '{}',
      ]);
    }
    return total;
  } finally {
    await client.end().catch(() => {});
  }
}

async function waitForApplied(admin, head, events) {
  const deadline = performance.now() + APPLY_DEADLINE_MS;
  for (;;) {
    const { rows: [row] } = await admin.query(`select count(*)::int as applied from ${FAST} where position > $1`, [head]);
    if (row.applied >= events) return;
    if (performance.now() > deadline) {
      throw new Error(`slow neighbour: ${FAST} applied ${row.applied} of ${events} events within ${APPLY_DEADLINE_MS / 1000} s`);
    }
    await sleep(20);
  }
}
