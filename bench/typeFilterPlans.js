// The batch read's plan and time for exact event types, prefix patterns and `*`, on one store:
// each must stay an index scan on the delivery-order index, with the type test as its filter.
// Usage: npm run build && node bench/typeFilterPlans.js [events]
import pg from 'pg';
import { migrate } from '../dist/store/migrate.js';
import { eventTypeFilter } from '../dist/store/eventTypeFilter.js';
import { readBatchSql } from '../dist/store/readBatch.js';
import { cleanUp } from './cleanup.js';
import { connect, openDatabase } from './database.js';

const events = Number(process.argv[2] ?? 200_000);
// Seven common types, and one in a thousand events of a rare one.
const CASES = [
  ['exact, common', ['common.1', 'common.2']],
  ['prefix, common', ['common.*']],
  ['all (*)', ['*']],
  ['exact, rare', ['rare.x']],
  ['prefix, rare', ['rare.*']],
];

const db = await openDatabase({ progress: () => {} });
const admin = await connect(db.url);
const pool = new pg.Pool({ connectionString: db.url, max: 1 });
try {
  await migrate(pool);
  for (let from = 0; from < events; from += 10_000) {
    await admin.query(
      `insert into projd.events (stream_id, stream_version, type, data)
       select 's' || g, 1, case when g % 1000 = 0 then 'rare.x' else 'common.' || (g % 7) end, '{}'
         from generate_series($1::int, $2::int) g`,
      [from, Math.min(from + 10_000, events) - 1],
    );
  }
  await admin.query('analyze projd.events');
  for (const [label, keys] of CASES) {
    const types = eventTypeFilter(keys);
    const params = [0, '0', '0', types.exact, types.prefixes, 1000];
    const times = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      await pool.query(readBatchSql, params);
      times.push(performance.now() - started);
    }
    const literal = (list) => `array[${list.map((item) => pg.escapeLiteral(item)).join(',')}]::text[]`;
    const sql = readBatchSql
      .replaceAll('$1::integer', '0::integer').replaceAll('$2::xid8', `'0'::xid8`).replaceAll('$3::bigint', '0::bigint')
      .replaceAll('$4::text[]', literal(types.exact)).replaceAll('$5::text[]', literal(types.prefixes)).replaceAll('$6', '1000');
    const { rows } = await admin.query(`explain (costs off) ${sql}`);
    const lines = rows.map((row) => row['QUERY PLAN'].trim());
    const filter = lines.findIndex((line) => line.includes('Filter: ((type'));
    const scan = lines.slice(0, filter).findLast((line) => line.includes('Scan'));
    const median = times.sort((a, b) => a - b)[2];
    console.log(`${label.padEnd(15)} ${median.toFixed(0).padStart(5)} ms  ${scan}  ${lines[filter]}`);
  }
} finally {
  await pool.end();
  await admin.end();
  await cleanUp();
}
