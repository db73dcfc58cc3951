// Live latency: projd runs, caught up, while writers append single-event transactions at a
// steady rate. Each event's latency runs from its own commit to the commit of the projd batch
// that applied it, i.e. until the read model shows it. Then the held-back release: how soon
// events held back by an open transaction that wrote no event are applied once it ends.

import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from './database.js';
import { balancesProjection, startApp, waitForCatchUp } from './contenders/projd.js';
import { CREDITED, DEBITED } from './readModel.js';
import { lastVersions } from './store.js';

const LATENCY_TABLE = 'bench_latency';
const APPLY_DEADLINE_MS = 30_000;
const POLL_MS = 20;

// Each round, a transaction that writes no event stays open 2 s while 20 events trickle in.
const BLOCKER_TABLE = 'bench_blocker';
const BLOCKER_ROUNDS = 5;
const BLOCKER_OPEN_MS = 2_000;
const BLOCKER_EVENTS = 20;

const appendSql = /* sql */ `insert into projd.events (stream_id, stream_version, type, data) values ($1, $2, $3, $4)`;

/**
 * Both ends on the server's clock: with track_commit_timestamp, the commit time of the event's
 * transaction and of projd's batch transaction (the latency row's xmin). Without it, the event's
 * created_at (its transaction's start) to the handler's clock_timestamp(): the first is a little
 * early and the second a little early too, by the rest of the batch and its commit.
 */
function latencySql(commitTimestamps) {
  const ms = commitTimestamps
    ? '(extract(epoch from pg_xact_commit_timestamp(l.xmin) - pg_xact_commit_timestamp(e.xmin)) * 1000)::float8'
    : '(extract(epoch from l.applied_at - e.created_at) * 1000)::float8';
  return /* sql */ `
    select count(*)::int as events,
           count(distinct l.xmin::text)::int as batches,
           percentile_disc(0.5) within group (order by ms) as p50,
           percentile_disc(0.95) within group (order by ms) as p95,
           percentile_disc(0.99) within group (order by ms) as p99,
           max(ms) as max
      from (select l.xmin, ${ms} as ms
              from ${LATENCY_TABLE} l
              join projd.events e on e.position = l.position) l`;
}

/**
 * Where the latency goes (commit timestamps only): from the event's commit until its handler
 * ran, from the handler until projd's batch committed, and how often projd's batches committed.
 */
const breakdownSql = /* sql */ `
  with applied as (
    select l.xmin::text as batch,
           pg_xact_commit_timestamp(e.xmin) as committed,
           l.applied_at,
           pg_xact_commit_timestamp(l.xmin) as visible
      from ${LATENCY_TABLE} l
      join projd.events e on e.position = l.position
  ),
  batch_gaps as (
    select visible - lag(visible) over (order by visible) as gap
      from (select distinct batch, visible from applied) batches
  )
  select percentile_disc(0.5) within group (order by (extract(epoch from applied_at - committed) * 1000)::float8) as to_handler,
         percentile_disc(0.5) within group (order by (extract(epoch from visible - applied_at) * 1000)::float8) as to_visible,
         (select percentile_disc(0.5) within group (order by (extract(epoch from gap) * 1000)::float8)
            from batch_gaps where gap is not null) as between_batches
    from applied`;

export async function measureLiveLatency({ url, admin, config, table, rate, duration, writers, commitTimestamps, progress }) {
  await admin.query(`drop table if exists ${LATENCY_TABLE}`);
  await admin.query(`create table ${LATENCY_TABLE} (position bigint primary key, applied_at timestamptz not null)`);
  // Same name and version as the catch-up contender: it resumes from that checkpoint, at the head.
  const { app, stop } = startApp(config, balancesProjection({ table, latencyTable: LATENCY_TABLE }));
  try {
    await app.start();
    await waitForCatchUp(app);
    progress(`live: writing ${rate} events/s for ${duration} s over ${writers} connection(s)`);
    const streams = await lastVersions(admin);
    const written = await writeSteadily({ url, streams, rate, duration, writers });
    await waitForApplied(admin, written.events);
    const { rows: [stats] } = await admin.query(latencySql(commitTimestamps));
    const breakdown = commitTimestamps ? (await admin.query(breakdownSql)).rows[0] : undefined;
    progress(`live: ${BLOCKER_ROUNDS} rounds of ${BLOCKER_EVENTS} events behind a transaction open ${BLOCKER_OPEN_MS / 1000} s`);
    const heldBackRelease = await measureHeldBackRelease({ url, admin, streams, commitTimestamps });
    return {
      rate,
      duration,
      writers,
      written: written.events,
      achievedRate: written.events / written.seconds,
      writerLateMs: written.lateMs,
      applied: stats.events,
      batches: stats.batches,
      clock: commitTimestamps ? 'commit timestamps' : 'created_at to handler clock',
      latencyMs: { p50: stats.p50, p95: stats.p95, p99: stats.p99, max: stats.max },
      p50Ms: breakdown && {
        commitToHandler: breakdown.to_handler,
        handlerToVisible: breakdown.to_visible,
        betweenBatches: breakdown.between_batches,
      },
      heldBackRelease,
    };
  } finally {
    await stop();
  }
}

/**
 * Appends `rate` events a second for `duration` seconds, each in its own transaction. Event i
 * is due at start + i / rate; a timer waits for it, so the rate holds even when a commit is slow.
 * A stream always goes to the same connection, so its versions commit in order.
 */
async function writeSteadily({ url, streams, rate, duration, writers }) {
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
      lateMs = Math.max(lateMs, performance.now() - due);
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
        try {
          await clients[writer].query(appendSql, values);
          committed += 1;
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

async function waitForApplied(admin, events) {
  const deadline = performance.now() + APPLY_DEADLINE_MS;
  for (;;) {
    const { rows: [row] } = await admin.query(`select count(*)::int as applied from ${LATENCY_TABLE}`);
    if (row.applied >= events) return;
    if (performance.now() > deadline) {
      throw new Error(`live: projd applied ${row.applied} of ${events} events within ${APPLY_DEADLINE_MS / 1000} s`);
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
