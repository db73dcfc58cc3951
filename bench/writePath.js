// The write path: what projd.events' insert triggers cost a writer. The same INSERTs go into
// projd.events and into a plain table of the same shape (same columns, defaults, identity,
// primary key, unique and check constraints, indexes; no triggers), in a database of their
// own so that the catch-up store is not touched, and both start empty.

import { randomBytes } from 'node:crypto';
import { onCleanup } from './cleanup.js';
import { benchConfig } from './config.js';
import { connect, withClient } from './database.js';
import { migrateStore } from '../dist/index.js';
import { serverCpuNs } from './serverCpu.js';

const STORE_TABLE = 'projd.events';
const PLAIN_TABLE = 'bench_plain_events';
/** Each stream gets this many versions, so most rows have a previous version to check. */
const VERSIONS_PER_STREAM = 10;
const ROWS_PER_STATEMENT = 100;

/**
 * Three cases: `rows` single-row INSERTs in one transaction (timed per quarter too, to show
 * whether a row costs more the more the transaction has written), `rows / 10` single-row
 * INSERTs each in a transaction of its own (a commit, so a WAL flush, per row), and `rows` in
 * INSERTs of 100 rows, each in a transaction of its own.
 *
 * Each table has a connection of its own, and the two take turns statement by statement, so
 * that whatever else the machine does hits both alike. With `repeat`, each case runs that many
 * rounds and the median of each side is kept.
 */
export async function measureWritePath({ url, rows, repeat = 1, progress }) {
  const writeUrl = await createWriteDatabase(url);
  await migrateStore(await benchConfig(writeUrl, { batchSize: 1000 }));
  const sides = {};
  for (const [name, table] of [['plain', PLAIN_TABLE], ['store', STORE_TABLE]]) {
    const client = await connect(writeUrl);
    onCleanup(() => client.end());
    const { rows: [{ pid }] } = await client.query('select pg_backend_pid() as pid');
    sides[name] = { client, pid, table };
  }
  await sides.plain.client.query(`create table ${PLAIN_TABLE} (like ${STORE_TABLE} including all)`);

  const cases = [
    { key: 'oneTransaction', label: 'single-row INSERTs, one transaction', rows, perStatement: 1, oneTransaction: true },
    { key: 'transactionEach', label: 'single-row INSERTs, a transaction each', rows: Math.max(100, Math.round(rows / 10)), perStatement: 1 },
    { key: 'multiRow', label: `${ROWS_PER_STATEMENT}-row INSERTs, a transaction each`, rows, perStatement: ROWS_PER_STATEMENT },
  ];
  const results = [];
  for (const entry of cases) {
    const runs = [];
    for (let round = 1; round <= repeat; round++) {
      const streams = `${entry.key}.${round}`;
      // A quiet server, as a backfill often meets: nothing left for autovacuum to analyze, so no
      // other transaction completes mid-case. One that did would hide the cost the era check had
      // before migration 0004: it walked the writer's own rows only until a later id completed.
      await sides.plain.client.query('vacuum analyze');
      await sides.plain.client.query('checkpoint').catch(() => {});
      progress(`write path: ${entry.label}, ${entry.rows} rows into each table${repeat > 1 ? ` (round ${round} of ${repeat})` : ''}`);
      runs.push(await runCase(sides, entry, streams));
      for (const side of Object.values(sides)) await expectRows(side.client, side.table, streams, entry.rows);
    }
    const plain = median(runs.map((run) => run.plain));
    const store = median(runs.map((run) => run.store));
    const cpuRatio = store.serverCpuSeconds === null ? null : store.serverCpuSeconds / plain.serverCpuSeconds;
    results.push({ key: entry.key, label: entry.label, rows: entry.rows, store, plain, ratio: store.seconds / plain.seconds, cpuRatio });
  }
  const concurrent = await measureConcurrentWriters({ writeUrl, transactions: Math.max(200, Math.round(rows / 10)), repeat, progress });
  return { cases: results, concurrent };
}

const WRITERS = 16;
const NOTIFY_TABLE = 'bench_notify_events';
const ARM_EVERY_MS = 5;

/**
 * Many writers at once, each a single-row INSERT per transaction: what a notifying trigger costs
 * when commits overlap. A transaction that has sent NOTIFY holds a database-wide lock from its
 * commit until its commit record is flushed, so notifying writers commit one at a time. Four
 * tables: plain; plain with a trigger that notifies at every statement (projd's trigger before
 * migration 0013); projd.events with no daemon waiting (its writers stay silent once one has
 * notified); and projd.events while a daemon arms the wake-up every 5 ms, as an idle daemon
 * would after each of its passes, the most it does.
 */
async function measureConcurrentWriters({ writeUrl, transactions, repeat, progress }) {
  await withClient(writeUrl, async (client) => {
    await client.query(`create table ${NOTIFY_TABLE} (like ${STORE_TABLE} including all)`);
    await client.query(`create function bench_notify() returns trigger language plpgsql as $$
                          begin perform pg_notify('bench_events', ''); return null; end $$`);
    await client.query(`create trigger bench_notify after insert on ${NOTIFY_TABLE} for each statement execute function bench_notify()`);
  });
  const sides = [
    { key: 'plain', label: 'plain table', table: PLAIN_TABLE },
    { key: 'notifyEach', label: 'plain table, NOTIFY at every insert (projd before 0013)', table: NOTIFY_TABLE },
    { key: 'store', label: 'projd.events, no daemon waiting', table: STORE_TABLE },
    { key: 'storeArmed', label: `projd.events, a daemon arming every ${ARM_EVERY_MS} ms`, table: STORE_TABLE, arm: true },
  ];
  const clients = [];
  for (let i = 0; i < WRITERS; i++) {
    const client = await connect(writeUrl);
    onCleanup(() => client.end());
    clients.push(client);
  }
  const runs = Object.fromEntries(sides.map((side) => [side.key, []]));
  for (let round = 1; round <= repeat; round++) {
    for (const side of sides) {
      progress(`write path: ${WRITERS} concurrent writers, ${transactions} transactions each, ${side.label}`);
      runs[side.key].push({ seconds: await runConcurrent(writeUrl, clients, side, transactions, `concurrent.${side.key}.${round}`) });
    }
  }
  return {
    writers: WRITERS,
    transactions,
    sides: sides.map((side) => {
      const { seconds } = median(runs[side.key]);
      return { key: side.key, label: side.label, commitsPerSecond: (WRITERS * transactions) / seconds };
    }),
  };
}

async function runConcurrent(writeUrl, clients, { table, arm }, transactions, streams) {
  let arming = true;
  const armer = arm
    ? (async () => {
        const client = await connect(writeUrl);
        try {
          while (arming) {
            await client.query('select projd.arm_wakeup()');
            await new Promise((resolve) => setTimeout(resolve, ARM_EVERY_MS));
          }
        } finally {
          await client.end();
        }
      })()
    : Promise.resolve();
  const started = performance.now();
  await Promise.all(
    clients.map(async (client, writer) => {
      for (let i = 0; i < transactions; i++) await client.query(insertSql(table, 1), row(`${streams}.${writer}`, i));
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  arming = false;
  await armer;
  return seconds;
}

/** Both tables, statement by statement in turns: the time each spent in its own statements. */
async function runCase(sides, { rows, perStatement, oneTransaction }, streams) {
  const names = ['plain', 'store'];
  const measured = Object.fromEntries(names.map((name) => [name, { ms: 0, quarterMs: [0, 0, 0, 0] }]));
  const cpuBefore = Object.fromEntries(await Promise.all(names.map(async (name) => [name, await serverCpuNs(sides[name].pid)])));
  const timed = async (name, sql, params, quarter) => {
    const started = performance.now();
    await sides[name].client.query(sql, params);
    const ms = performance.now() - started;
    measured[name].ms += ms;
    measured[name].quarterMs[quarter] += ms;
  };

  if (oneTransaction) for (const name of names) await timed(name, 'begin', [], 0);
  for (let first = 0, step = 0; first < rows; first += perStatement, step++) {
    const size = Math.min(perStatement, rows - first);
    const params = [];
    for (let i = first; i < first + size; i++) params.push(...row(streams, i));
    const quarter = Math.min(3, Math.floor((4 * first) / rows));
    // Turns: which table goes first alternates too.
    for (const name of step % 2 === 0 ? names : [...names].reverse()) {
      await timed(name, insertSql(sides[name].table, size), params, quarter);
    }
  }
  if (oneTransaction) for (const name of names) await timed(name, 'commit', [], 3);

  const quarterRows = [0, 1, 2, 3].map((quarter) => Math.ceil(((quarter + 1) * rows) / 4) - Math.ceil((quarter * rows) / 4));
  const result = {};
  for (const name of names) {
    const cpuAfter = await serverCpuNs(sides[name].pid);
    result[name] = {
      seconds: measured[name].ms / 1000,
      serverCpuSeconds: cpuBefore[name] === null || cpuAfter === null ? null : (cpuAfter - cpuBefore[name]) / 1e9,
      ...(oneTransaction
        ? { quarterMicrosPerRow: measured[name].quarterMs.map((ms, quarter) => (ms * 1000) / quarterRows[quarter]) }
        : {}),
    };
  }
  return result;
}

/** The run of median duration (with its quarters and server CPU time, where it has them). */
function median(runs) {
  const sorted = [...runs].sort((a, b) => a.seconds - b.seconds);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

function insertSql(table, size) {
  const values = Array.from({ length: size }, (_, i) => `($${2 * i + 1}, $${2 * i + 2}, 'account.credited', '{"amount": 100}')`);
  return /* sql */ `insert into ${table} (stream_id, stream_version, type, data) values ${values.join(', ')}`;
}

/** Row i of a case: streams of ten versions, written in order. */
function row(streams, i) {
  return [`${streams}-${Math.floor(i / VERSIONS_PER_STREAM)}`, (i % VERSIONS_PER_STREAM) + 1];
}

async function expectRows(client, table, streams, count) {
  const { rows } = await client.query(`select count(*)::int as rows from ${table} where stream_id like $1`, [`${streams}-%`]);
  if (rows[0].rows !== count) throw new Error(`${table} holds ${rows[0].rows} rows of '${streams}', expected ${count}`);
}

/** A database of its own next to the benchmark's, dropped at the end. */
async function createWriteDatabase(url) {
  const name = `projd_bench_write_${randomBytes(3).toString('hex')}`;
  await withClient(url, (client) => client.query(`create database ${name}`));
  onCleanup(() => withClient(url, (client) => client.query(`drop database if exists ${name} with (force)`)));
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}
