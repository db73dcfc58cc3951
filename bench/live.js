// Live latency: `projd run`, a process of its own as users run it (daemon.js), runs the example
// projections of `projections/` (balances.ts and deposits.yaml) next to a projection that
// records when it applied each event; caught up, while writers in this process append
// single-event transactions at a steady rate. An event's latency runs from its own commit to the
// commit of the projd batch that applied it, i.e. until the read model shows it. Beside it, read
// your own writes: for a sample of the live events, `waitFor` on bench_latency right after the
// append commits, from the commit to the waiter woken. Then the held-back release: how soon
// events held back by an open transaction that wrote no event are applied once it ends.

import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { closeWaitFor, waitFor } from '../dist/index.js';
import { connect } from './database.js';
import { startDaemon } from './daemon.js';
import { projectionsFolder } from './contenders/projd.js';
import { CREDITED, DEBITED } from './readModel.js';
import { measuringCores } from './machineCpu.js';
import { lastVersions } from './store.js';

const EXAMPLES_DIR = fileURLToPath(new URL('../projections/', import.meta.url));
export const EXAMPLE_FILES = ['balances.ts', 'deposits.yaml'];
/** The example projections' tables, as their files name them. */
export const EXAMPLE_TABLES = { balances: 'balances', deposits: 'deposits' };

const LATENCY_TABLE = 'bench_latency';
const APPLY_DEADLINE_MS = 30_000;
const CATCH_UP_DEADLINE_MS = 15 * 60_000;
const POLL_MS = 20;

/** The target the issue sets for the live phase: p99 commit to read model at 1,000 events/s. */
export const LIVE_P99_TARGET_MS = 10;

// Each round, a transaction that writes no event stays open 2 s while 20 events trickle in.
const BLOCKER_TABLE = 'bench_blocker';
const BLOCKER_ROUNDS = 5;
const BLOCKER_OPEN_MS = 2_000;
const BLOCKER_EVENTS = 20;

const appendSql = /* sql */ `insert into projd.events (stream_id, stream_version, type, data) values ($1, $2, $3, $4)`;

// Every 10th live event gets a waiter: 100 waits/s at the default rate, each one query when it
// starts, so the waits load the server little beside the writes they measure.
const WAIT_SAMPLE_EVERY = 10;
const WAIT_TIMEOUT = '30s';

/**
 * The latency-recording projection, a module in the projections folder like any other: for each
 * event, its position, the start of projd's batch transaction (now()) and the moment its
 * handler ran (clock_timestamp()).
 */
const LATENCY_PROJECTION = `import { defineProjection } from 'projd';

export default defineProjection({
  name: '${LATENCY_TABLE}',
  version: 1,
  setup: 'create table if not exists ${LATENCY_TABLE} (position bigint primary key, batch_started timestamptz not null, applied_at timestamptz not null)',
  reset: 'truncate ${LATENCY_TABLE}',
  handlers: {
    '*': (event, db) => {
      db.query('insert into ${LATENCY_TABLE} (position, batch_started, applied_at) values ($1, now(), clock_timestamp())', [event.position]);
    },
  },
});
`;

const percentilesSql = (ms) => /* sql */ `
  count(*)::int as events,
  percentile_disc(0.5) within group (order by ${ms}) as p50,
  percentile_disc(0.95) within group (order by ${ms}) as p95,
  percentile_disc(0.99) within group (order by ${ms}) as p99,
  max(${ms}) as max`;

/**
 * Per read model, on the server's clock. With track_commit_timestamp: from the commit of the
 * event's transaction to the commit of the projd batch that made it visible (the row's xmin).
 * bench_latency has a row per event; balances and deposits keep one row per account, so they
 * are measured at each account's last live event (its last live credit for deposits), whose
 * batch is the one that wrote the row as it stands. Without commit timestamps, bench_latency
 * alone, from the event's created_at (its transaction's start) to the handler's clock_timestamp().
 * $1: the head before the live phase.
 */
function latencySql(commitTimestamps) {
  const commitMs = (later, earlier) =>
    `(extract(epoch from pg_xact_commit_timestamp(${later}) - pg_xact_commit_timestamp(${earlier})) * 1000)::float8`;
  if (!commitTimestamps) {
    return /* sql */ `
      select '${LATENCY_TABLE}' as read_model, ${percentilesSql('ms')}
        from (select (extract(epoch from l.applied_at - e.created_at) * 1000)::float8 as ms
                from ${LATENCY_TABLE} l join projd.events e on e.position = l.position
               where l.position > $1) l`;
  }
  return /* sql */ `
    with last_event as (
      select distinct on (stream_id) stream_id, position, xmin from projd.events
       where position > $1 order by stream_id, position desc
    ),
    last_credit as (
      select distinct on (stream_id) stream_id, position, xmin from projd.events
       where position > $1 and type = '${CREDITED}' order by stream_id, position desc
    ),
    samples as (
      select '${LATENCY_TABLE}' as read_model, ${commitMs('l.xmin', 'e.xmin')} as ms
        from ${LATENCY_TABLE} l join projd.events e on e.position = l.position
       where l.position > $1
      union all
      select 'balances', ${commitMs('b.xmin', 'e.xmin')}
        from last_event e join ${EXAMPLE_TABLES.balances} b on b.account_id = e.stream_id
      union all
      select 'deposits', ${commitMs('d.xmin', 'e.xmin')}
        from last_credit e join ${EXAMPLE_TABLES.deposits} d on d.account_id = e.stream_id
    )
    select read_model, ${percentilesSql('ms')} from samples group by read_model order by read_model`;
}

/**
 * Where bench_latency's latency goes (commit timestamps only), per event, p50 and p99 of:
 * event commit → the bench's own LISTEN connection hears the notification (the first one
 * heard after the commit; $2, epoch ms, on this machine's clock, which the server shares);
 * notification → projd's batch transaction begins (the runner wakes, waits for a batch still
 * running, takes a connection); begin → the handler runs (lock, snapshot gate, batch read);
 * handler → the batch commits (checkpoint, commit); and the interval between batch commits.
 */
const breakdownSql = /* sql */ `
  with heard as (select unnest($2::float8[]) as at_ms),
  applied as (
    select l.xmin::text as batch,
           extract(epoch from pg_xact_commit_timestamp(e.xmin)) * 1000 as committed_ms,
           extract(epoch from l.batch_started) * 1000 as begun_ms,
           extract(epoch from l.applied_at) * 1000 as handled_ms,
           extract(epoch from pg_xact_commit_timestamp(l.xmin)) * 1000 as visible_ms
      from ${LATENCY_TABLE} l
      join projd.events e on e.position = l.position
     where l.position > $1
  ),
  steps as (
    select a.*, (select min(h.at_ms) from heard h where h.at_ms >= a.committed_ms) as heard_ms
      from applied a
  ),
  batch_gaps as (
    select visible_ms - lag(visible_ms) over (order by visible_ms) as gap
      from (select distinct batch, visible_ms from applied) batches
  )
  select percentile_disc(array[0.5, 0.99]) within group (order by (heard_ms - committed_ms)::float8) as to_notified,
         percentile_disc(array[0.5, 0.99]) within group (order by (begun_ms - heard_ms)::float8) as to_begin,
         percentile_disc(array[0.5, 0.99]) within group (order by (begun_ms - committed_ms)::float8) as commit_to_begin,
         percentile_disc(array[0.5, 0.99]) within group (order by (handled_ms - begun_ms)::float8) as to_handler,
         percentile_disc(array[0.5, 0.99]) within group (order by (visible_ms - handled_ms)::float8) as to_visible,
         (select percentile_disc(array[0.5, 0.99]) within group (order by gap::float8)
            from batch_gaps where gap is not null) as between_batches,
         count(distinct batch)::int as batches
    from steps`;

/**
 * Read your own writes, per sampled event (commit timestamps only), p50 and p99 of: the event's
 * commit → its waiter woken ($2, epoch ms, on this machine's clock, which the server shares);
 * the commit → bench_latency's batch commit (the read model shows it); and that batch commit →
 * the waiter woken, what waiting adds (the notice's delivery, the waiter's compare).
 * $1: the sampled positions.
 */
const waitsSql = /* sql */ `
  with woken as (select unnest($1::bigint[]) as position, unnest($2::float8[]) as woken_ms),
  samples as (
    select w.woken_ms,
           extract(epoch from pg_xact_commit_timestamp(e.xmin)) * 1000 as committed_ms,
           extract(epoch from pg_xact_commit_timestamp(l.xmin)) * 1000 as visible_ms
      from woken w
      join projd.events e on e.position = w.position
      join ${LATENCY_TABLE} l on l.position = w.position
  )
  select count(*)::int as waits,
         percentile_disc(array[0.5, 0.99]) within group (order by (woken_ms - committed_ms)::float8) as commit_to_woken,
         percentile_disc(array[0.5, 0.99]) within group (order by (visible_ms - committed_ms)::float8) as commit_to_read_model,
         percentile_disc(array[0.5, 0.99]) within group (order by (woken_ms - visible_ms)::float8) as read_model_to_woken
    from samples`;

/**
 * Every live event is in each read model: bench_latency has its row, balances shows each
 * account's last live position, deposits counts each account's credits. $1: the head before.
 */
const appliedSql = /* sql */ `
  with touched as (select distinct stream_id from projd.events where position > $1),
  expected as (
    select t.stream_id,
           max(e.position) as position,
           count(*) filter (where e.type = '${CREDITED}')::int as credits
      from touched t join projd.events e on e.stream_id = t.stream_id
     group by t.stream_id
  )
  select (select count(*) from ${LATENCY_TABLE} where position > $1)::int as latency_rows,
         count(*) filter (where b.updated_position is distinct from x.position)::int as balances_behind,
         count(*) filter (where x.credits > 0 and d.count is distinct from x.credits)::int as deposits_behind
    from expected x
    left join ${EXAMPLE_TABLES.balances} b on b.account_id = x.stream_id
    left join ${EXAMPLE_TABLES.deposits} d on d.account_id = x.stream_id`;

/** A projections folder holding copies of the example projections, and `files` ({ name: text }) beside them. */
export async function examplesFolder(files = {}) {
  const dir = await projectionsFolder(files);
  for (const file of EXAMPLE_FILES) await copyFile(path.join(EXAMPLES_DIR, file), path.join(dir, file));
  return dir;
}

export async function measureLiveLatency({ url, admin, batchSize, rate, duration, writers, commitTimestamps, progress }) {
  for (const table of [LATENCY_TABLE, ...Object.values(EXAMPLE_TABLES)]) await admin.query(`drop table if exists ${table}`);
  progress(`live: projd run with ${[...EXAMPLE_FILES, `${LATENCY_TABLE}.mjs`].join(', ')}, catching up from position 0`);
  const catchUpStarted = performance.now();
  const { stop } = await startDaemon({
    url,
    batchSize,
    copies: EXAMPLE_FILES.map((file) => path.join(EXAMPLES_DIR, file)),
    files: { [`${LATENCY_TABLE}.mjs`]: LATENCY_PROJECTION },
    readyWithinMs: CATCH_UP_DEADLINE_MS,
  });
  try {
    const catchUpSeconds = (performance.now() - catchUpStarted) / 1000;
    const { rows: [{ head }] } = await admin.query('select max(position)::text as head from projd.events');

    progress(`live: writing ${rate} events/s for ${duration} s over ${writers} connection(s)`);
    const listening = await listenForNotifications(url);
    const waiting = await startWaiters(url, head);
    const streams = await lastVersions(admin);
    let written;
    let waited;
    let coresBusy;
    try {
      const writing = await measuringCores(() => writeSteadily({ url, streams, rate, duration, writers, onCommitted: waiting.sample }));
      written = writing.result;
      coresBusy = writing.cores;
      await waitForApplied(admin, head, written.events);
      waited = await waiting.settled();
    } finally {
      await listening.stop();
      await waiting.stop();
    }
    const { rows: readModels } = await admin.query(latencySql(commitTimestamps), [head]);
    const breakdown = commitTimestamps ? (await admin.query(breakdownSql, [head, listening.heardAtMs])).rows[0] : undefined;
    const waits = commitTimestamps ? (await admin.query(waitsSql, [waited.positions, waited.wokenAtMs])).rows[0] : undefined;
    const worstP99 = Math.max(...readModels.map((row) => row.p99));
    progress(`live: ${BLOCKER_ROUNDS} rounds of ${BLOCKER_EVENTS} events behind a transaction open ${BLOCKER_OPEN_MS / 1000} s`);
    const heldBackRelease = await measureHeldBackRelease({ url, admin, streams, commitTimestamps });
    return {
      projections: [...Object.keys(EXAMPLE_TABLES), LATENCY_TABLE],
      catchUpSeconds,
      rate,
      duration,
      writers,
      written: written.events,
      achievedRate: written.events / written.seconds,
      writerLateMs: written.lateMs,
      coresBusy,
      clock: commitTimestamps ? 'commit timestamps' : 'created_at to handler clock',
      readModels: readModels.map(({ read_model: readModel, events, p50, p95, p99, max }) => ({
        readModel,
        samples: events,
        latencyMs: { p50, p95, p99, max },
      })),
      p99TargetMs: LIVE_P99_TARGET_MS,
      worstP99Ms: worstP99,
      meetsTarget: worstP99 <= LIVE_P99_TARGET_MS,
      batches: breakdown?.batches,
      notifications: listening.heardAtMs.length,
      breakdownMs: breakdown && {
        commitToNotified: pair(breakdown.to_notified),
        notifiedToBatchBegin: pair(breakdown.to_begin),
        commitToBatchBegin: pair(breakdown.commit_to_begin),
        batchBeginToHandler: pair(breakdown.to_handler),
        handlerToBatchCommit: pair(breakdown.to_visible),
        betweenBatchCommits: pair(breakdown.between_batches),
      },
      waitFor: waits && {
        sampleEvery: WAIT_SAMPLE_EVERY,
        projection: LATENCY_TABLE,
        waits: waits.waits,
        commitToWokenMs: pair(waits.commit_to_woken),
        commitToReadModelMs: pair(waits.commit_to_read_model),
        readModelToWokenMs: pair(waits.read_model_to_woken),
      },
      heldBackRelease,
    };
  } finally {
    await stop();
  }
}

/** [p50, p99] → { p50, p99 }. */
function pair(values) {
  return values ? { p50: values[0], p99: values[1] } : null;
}

/**
 * A LISTEN of the bench's own on projd's channel, recording when each notification arrives
 * (epoch ms): where projd's listener would hear it, minus projd's own queueing.
 */
async function listenForNotifications(url) {
  const client = await connect(url);
  const heardAtMs = [];
  client.on('notification', () => heardAtMs.push(performance.timeOrigin + performance.now()));
  await client.query('listen projd_events');
  return {
    heardAtMs,
    stop: () => client.end().catch(() => {}),
  };
}

/**
 * Waiters, as an application reading its own writes runs them: `waitFor` on a pool of their
 * own, started as soon as a sampled append has committed; each records when it was woken.
 * `head`: a position every projection has applied already.
 */
async function startWaiters(url, head) {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on('error', () => {});
  // Opens the pool's LISTEN connection before the writers start: the first wait opens it, and
  // under the writers' load that took 0.3-0.5 s, which the waits of the first half second measured.
  await waitFor(pool, { projections: [LATENCY_TABLE], position: head }, { timeout: WAIT_TIMEOUT, preparedStatements: true });
  const positions = [];
  const wokenAtMs = [];
  const pending = [];
  let committed = 0;
  return {
    sample(position) {
      committed += 1;
      if (committed % WAIT_SAMPLE_EVERY !== 0) return;
      pending.push(
        waitFor(pool, { projections: [LATENCY_TABLE], position }, { timeout: WAIT_TIMEOUT, preparedStatements: true }).then(() => {
          wokenAtMs.push(performance.timeOrigin + performance.now());
          positions.push(position);
        }),
      );
    },
    async settled() {
      await Promise.all(pending);
      return { positions, wokenAtMs };
    },
    async stop() {
      await Promise.allSettled(pending);
      await closeWaitFor(pool);
      await pool.end();
    },
  };
}

/**
 * Appends `rate` events a second for `duration` seconds, each in its own transaction. Event i
 * is due at start + i / rate; a timer waits for it, so the rate holds even when a commit is slow.
 * A stream always goes to the same connection, so its versions commit in order. When commits
 * are slower than the rate, events queue behind their connection's earlier ones: `lateMs`, the
 * most an INSERT started after its due time, and the rate achieved say so.
 */
async function writeSteadily({ url, streams, rate, duration, writers, onCommitted = () => {} }) {
  const clients = [];
  try {
    for (let i = 0; i < writers; i++) clients.push(await connect(url));
    const queues = clients.map(() => Promise.resolve());
    const random = seededRandom(7);
    const total = rate * duration;
    let failure;
    let committed = 0;
    let lastCommitAt = 0;
    let lateMs = 0;
    const started = performance.now();
    for (let i = 0; i < total && !failure; i++) {
      const due = started + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      const index = Math.floor(random() * streams.length);
      const stream = streams[index];
      stream.version += 1;
      const debit = random() < 0.3;
      const values = [
        stream.streamId,
        stream.version,
        debit ? DEBITED : CREDITED,
        JSON.stringify({ amount: 1 + Math.floor(random() * 1000) }),
      ];
      const writer = index % writers;
      queues[writer] = queues[writer].then(async () => {
        if (failure) return;
        // Late from its due time to its INSERT: behind the writer's earlier commits when those are slow.
        lateMs = Math.max(lateMs, performance.now() - due);
        try {
          const { rows: [row] } = await clients[writer].query(`${appendSql} returning position::text as position`, values);
          committed += 1;
          onCommitted(row.position);
          lastCommitAt = performance.now();
        } catch (error) {
          failure ??= error;
        }
      });
    }
    await Promise.all(queues);
    if (failure) throw new Error(`live writer: ${failure.message}`, { cause: failure });
    return { events: committed, seconds: (lastCommitAt - started) / 1000, lateMs };
  } finally {
    await Promise.all(clients.map((client) => client.end().catch(() => {})));
  }
}

/**
 * Events held back by a transaction that wrote no event: it takes a transaction id by writing a
 * row elsewhere and stays open while events are appended and committed behind it; nothing
 * notifies its end. Each round's delay runs from its commit to the commit of the projd batch
 * that applied the last of those events (on the server's clock; without commit timestamps, from
 * just before its commit to the last handler's clock_timestamp()).
 */
async function measureHeldBackRelease({ url, admin, streams, commitTimestamps }) {
  await admin.query(`drop table if exists ${BLOCKER_TABLE}`);
  await admin.query(`create table ${BLOCKER_TABLE} (id bigint generated always as identity primary key)`);
  const blocker = await connect(url);
  const writer = await connect(url);
  const random = seededRandom(11);
  const delaysMs = [];
  try {
    for (let round = 0; round < BLOCKER_ROUNDS; round++) {
      await blocker.query('begin');
      const { rows: [{ xid }] } = await blocker.query(
        `insert into ${BLOCKER_TABLE} default values returning pg_current_xact_id()::text as xid`,
      );
      const positions = [];
      for (let i = 0; i < BLOCKER_EVENTS; i++) {
        const stream = streams[Math.floor(random() * streams.length)];
        stream.version += 1;
        const values = [stream.streamId, stream.version, CREDITED, JSON.stringify({ amount: 1 + Math.floor(random() * 1000) })];
        const { rows: [row] } = await writer.query(`${appendSql} returning position::text as position`, values);
        positions.push(row.position);
        await sleep(BLOCKER_OPEN_MS / BLOCKER_EVENTS);
      }
      const { rows: [{ before_commit: beforeCommit }] } = await blocker.query('select clock_timestamp() as before_commit');
      await blocker.query('commit');
      await waitForPositions(admin, positions);
      const ends = commitTimestamps
        ? { from: 'pg_xact_commit_timestamp(xid($1::xid8))', to: 'max(pg_xact_commit_timestamp(l.xmin))' }
        : { from: '$1::timestamptz', to: 'max(l.applied_at)' };
      const { rows: [{ ms }] } = await admin.query(
        `select (extract(epoch from ${ends.to} - ${ends.from}) * 1000)::float8 as ms
           from ${LATENCY_TABLE} l where l.position = any($2::bigint[])`,
        [commitTimestamps ? xid : beforeCommit, positions],
      );
      delaysMs.push(ms);
    }
  } finally {
    await blocker.query('rollback').catch(() => {});
    await Promise.all([blocker, writer].map((client) => client.end().catch(() => {})));
  }
  const sorted = [...delaysMs].sort((a, b) => a - b);
  return {
    rounds: BLOCKER_ROUNDS,
    openMs: BLOCKER_OPEN_MS,
    events: BLOCKER_EVENTS,
    delaysMs,
    p50Ms: sorted[Math.floor((sorted.length - 1) / 2)],
    maxMs: sorted.at(-1),
  };
}

async function waitForPositions(admin, positions) {
  const deadline = performance.now() + APPLY_DEADLINE_MS;
  for (;;) {
    const { rows: [row] } = await admin.query(
      `select count(*)::int as applied from ${LATENCY_TABLE} where position = any($1::bigint[])`,
      [positions],
    );
    if (row.applied === positions.length) return;
    if (performance.now() > deadline) {
      throw new Error(`live: projd applied ${row.applied} of ${positions.length} held-back events within ${APPLY_DEADLINE_MS / 1000} s`);
    }
    await sleep(POLL_MS);
  }
}

async function waitForApplied(admin, head, events) {
  const deadline = performance.now() + APPLY_DEADLINE_MS;
  for (;;) {
    const { rows: [row] } = await admin.query(appliedSql, [head]);
    if (row.latency_rows >= events && row.balances_behind === 0 && row.deposits_behind === 0) return;
    if (performance.now() > deadline) {
      throw new Error(
        `live: within ${APPLY_DEADLINE_MS / 1000} s, ${LATENCY_TABLE} applied ${row.latency_rows} of ${events} events; ` +
          `balances is behind on ${row.balances_behind} accounts, deposits on ${row.deposits_behind}`,
      );
    }
    await sleep(POLL_MS);
  }
}

/** mulberry32: the same streams and amounts on every run. */
function seededRandom(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
