// Small batches: what projd costs per event when events come one at a time, the live case. The
// example projections (balances.ts, deposits.yaml) run, loaded from a folder as `projd run`
// loads them; one event is appended, and the next only once both read models show it (waited
// for with `waitFor`). Each round runs with database.preparedStatements off (every statement
// of a batch parsed and planned anew, as behind a pooler that cannot keep prepared statements)
// and then on (the default), on one database. Reported per event: the time from the append's
// commit to the waiter woken, and the CPU time the daemon's server processes used (from /proc,
// so only for a server on this machine: the embedded one).

import os from 'node:os';
import pg from 'pg';
import { closeWaitFor, waitFor } from '../dist/index.js';
import { benchConfig } from './config.js';
import { startApp, waitForCatchUp } from './contenders/projd.js';
import { EXAMPLE_TABLES, examplesFolder } from './live.js';
import { CREDITED } from './readModel.js';
import { serverCpuNs } from './serverCpu.js';
import { lastVersions } from './store.js';

/** The example projections, each named as its table. */
const PROJECTIONS = Object.keys(EXAMPLE_TABLES);
const EVENTS_PER_ROUND = 300;
const ROUNDS = 2;

const appendSql = /* sql */ `
  insert into projd.events (stream_id, stream_version, type, data) values ($1, $2, $3, $4)
  returning position::text as position`;

export async function measureSmallBatches({ url, admin, batchSize, progress }) {
  const dir = await examplesFolder();
  const streams = await lastVersions(admin);
  const runs = { unprepared: [], prepared: [] };
  let next = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [key, preparedStatements] of [['unprepared', false], ['prepared', true]]) {
      progress(`small batches: ${EVENTS_PER_ROUND} events one at a time, database.preparedStatements ${preparedStatements} (round ${round} of ${ROUNDS})`);
      const config = await benchConfig(url, { batchSize, dir });
      const { app, stop } = startApp({ ...config, database: { ...config.database, preparedStatements } });
      const waiters = new pg.Pool({ connectionString: url, max: 1, application_name: 'bench waiter' });
      waiters.on('error', () => {});
      try {
        await app.start();
        await waitForCatchUp(app);
        // A first event each, so that every connection has run a batch before the count starts.
        next = await appendAndWait(admin, waiters, streams, next);
        const before = await daemonServerCpu(admin);
        const wallMs = [];
        for (let i = 0; i < EVENTS_PER_ROUND; i++) {
          const started = performance.now();
          next = await appendAndWait(admin, waiters, streams, next);
          wallMs.push(performance.now() - started);
        }
        const after = await daemonServerCpu(admin);
        runs[key].push({ wallMs, serverCpuUs: cpuSpent(before, after) });
      } finally {
        await closeWaitFor(waiters);
        await waiters.end();
        await stop();
      }
    }
  }
  const summary = (entries) => {
    const wall = entries.flatMap((entry) => entry.wallMs).sort((a, b) => a - b);
    const cpu = entries.map((entry) => entry.serverCpuUs);
    return {
      events: wall.length,
      p50Ms: wall[Math.floor(wall.length / 2)],
      p99Ms: wall[Math.min(wall.length - 1, Math.floor(wall.length * 0.99))],
      serverCpuUsPerEvent: cpu.includes(null) ? null : cpu.reduce((sum, us) => sum + us, 0) / wall.length,
    };
  };
  const unprepared = summary(runs.unprepared);
  const prepared = summary(runs.prepared);
  return {
    projections: PROJECTIONS,
    rounds: ROUNDS,
    unprepared,
    prepared,
    cpuRatio: prepared.serverCpuUsPerEvent === null ? null : prepared.serverCpuUsPerEvent / unprepared.serverCpuUsPerEvent,
  };
}

/** Appends a credit to the next stream, waits for both read models to show it; the next stream's index. */
async function appendAndWait(admin, waiters, streams, next) {
  const stream = streams[next % streams.length];
  stream.version += 1;
  const { rows: [{ position }] } = await admin.query(appendSql, [stream.streamId, stream.version, CREDITED, JSON.stringify({ amount: 1 })]);
  await waitFor(waiters, { projections: PROJECTIONS, position }, { timeout: '30s' });
  return next + 1;
}

/**
 * The CPU time used so far by each server process of this process's daemon connections, in ns,
 * by pid; null when a process cannot be read (a server elsewhere).
 */
async function daemonServerCpu(admin) {
  const name = `projd % ${os.hostname()}:${process.pid}`.slice(0, 63);
  const { rows } = await admin.query('select pid from pg_stat_activity where application_name like $1', [name]);
  const cpu = new Map();
  for (const { pid } of rows) {
    const ns = await serverCpuNs(pid);
    if (ns === null) return null;
    cpu.set(pid, ns);
  }
  return cpu;
}

/** The CPU time spent between two readings, in µs: all of it for a process that came meanwhile. */
function cpuSpent(before, after) {
  if (before === null || after === null) return null;
  let total = 0;
  for (const [pid, ns] of after) total += ns - (before.get(pid) ?? 0);
  return total / 1000;
}
