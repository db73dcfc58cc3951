// The write path: what projd.events' insert triggers cost a writer. The same INSERTs go into
// projd.events and into a plain table of the same shape (same columns, defaults, identity,
// primary key, unique and check constraints, indexes; no triggers), in a database of their
// own so that the catch-up store is not touched, and both start empty.

import { randomBytes } from 'node:crypto';
import { onCleanup } from './cleanup.js';
import { benchConfig } from './config.js';
import { connect, withClient } from './database.js';
import { migrateStore } from '../dist/index.js';

const STORE_TABLE = 'projd.events';
const PLAIN_TABLE = 'bench_plain_events';
/** Each stream gets this many versions, so most rows have a previous version to check. */
const VERSIONS_PER_STREAM = 10;
const ROWS_PER_STATEMENT = 100;

/**
 * Three cases, each written to the plain table and then to projd.events in the same run:
 * `rows` single-row INSERTs in one transaction (timed per quarter, to show whether a row costs
 * more the more the transaction has written), `rows / 10` single-row INSERTs each in a
 * transaction of its own (a commit, so a WAL flush, per row), and `rows` in INSERTs of 100
 * rows, each in a transaction of its own. With `repeat`, each case runs that many rounds and
 * the median of each side is kept.
 */
export async function measureWritePath({ url, rows, repeat = 1, progress }) {
  const writeUrl = await createWriteDatabase(url);
  await migrateStore(await benchConfig(writeUrl, { batchSize: 1000 }));
  const client = await connect(writeUrl);
  onCleanup(() => client.end());
  await client.query(`create table ${PLAIN_TABLE} (like ${STORE_TABLE} including all)`);

  const cases = [
    { key: 'oneTransaction', label: 'single-row INSERTs, one transaction', rows, run: oneTransaction },
    { key: 'transactionEach', label: 'single-row INSERTs, a transaction each', rows: Math.max(100, Math.round(rows / 10)), run: transactionEach },
    { key: 'multiRow', label: `${ROWS_PER_STATEMENT}-row INSERTs, a transaction each`, rows, run: multiRow },
  ];
  const results = [];
  for (const { key, label, rows: count, run } of cases) {
    const runs = { plain: [], store: [] };
    for (let round = 1; round <= repeat; round++) {
      // Each round swaps which table goes first, so that a load change hits both alike.
      const sides = [['plain', PLAIN_TABLE], ['store', STORE_TABLE]];
      for (const [side, table] of round % 2 === 1 ? sides : sides.reverse()) {
        const streams = `${key}.${round}`;
        await client.query('checkpoint').catch(() => {});
        progress(`write path: ${label}, ${count} rows into ${table}${repeat > 1 ? ` (round ${round} of ${repeat})` : ''}`);
        runs[side].push(await run(client, table, streams, count));
        await expectRows(client, table, streams, count);
      }
    }
    const plain = medianRun(runs.plain);
    const store = medianRun(runs.store);
    results.push({ key, label, rows: count, store, plain, ratio: store.seconds / plain.seconds });
  }
  return { cases: results };
}

async function oneTransaction(client, table, key, count) {
  const quarterEnds = [1, 2, 3, 4].map((quarter) => Math.round((quarter * count) / 4));
  const quarterMicrosPerRow = [];
  const started = performance.now();
  let quarterStarted = started;
  await client.query('begin');
  for (let i = 0; i < count; i++) {
    await client.query(singleRowSql(table), row(key, i));
    const quarter = quarterMicrosPerRow.length;
    if (i + 1 === quarterEnds[quarter]) {
      const now = performance.now();
      const rowsInQuarter = quarterEnds[quarter] - (quarter === 0 ? 0 : quarterEnds[quarter - 1]);
      quarterMicrosPerRow.push(((now - quarterStarted) * 1000) / rowsInQuarter);
      quarterStarted = now;
    }
  }
  await client.query('commit');
  return { seconds: (performance.now() - started) / 1000, quarterMicrosPerRow };
}

async function transactionEach(client, table, key, count) {
  const started = performance.now();
  for (let i = 0; i < count; i++) await client.query(singleRowSql(table), row(key, i));
  return { seconds: (performance.now() - started) / 1000 };
}

async function multiRow(client, table, key, count) {
  const started = performance.now();
  for (let first = 0; first < count; first += ROWS_PER_STATEMENT) {
    const size = Math.min(ROWS_PER_STATEMENT, count - first);
    const params = [];
    for (let i = first; i < first + size; i++) params.push(...row(key, i));
    await client.query(multiRowSql(table, size), params);
  }
  return { seconds: (performance.now() - started) / 1000 };
}

/** The run of median duration, with its quarters. */
function medianRun(runs) {
  const sorted = [...runs].sort((a, b) => a.seconds - b.seconds);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

function singleRowSql(table) {
  return /* sql */ `insert into ${table} (stream_id, stream_version, type, data) values ($1, $2, 'account.credited', '{"amount": 100}')`;
}

function multiRowSql(table, size) {
  const values = Array.from({ length: size }, (_, i) => `($${2 * i + 1}, $${2 * i + 2}, 'account.credited', '{"amount": 100}')`);
  return /* sql */ `insert into ${table} (stream_id, stream_version, type, data) values ${values.join(', ')}`;
}

/** Row i of a case: streams of ten versions, written in order. */
function row(key, i) {
  return [`${key}-${Math.floor(i / VERSIONS_PER_STREAM)}`, (i % VERSIONS_PER_STREAM) + 1];
}

async function expectRows(client, table, key, count) {
  const { rows } = await client.query(`select count(*)::int as rows from ${table} where stream_id like $1`, [`${key}-%`]);
  if (rows[0].rows !== count) throw new Error(`${table} holds ${rows[0].rows} rows of '${key}', expected ${count}`);
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
