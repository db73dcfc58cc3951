// `npm run bench:adopt`: what `projd migrate --adopt` costs on a big plain table: how long the
// columns take to add (no rewrite: milliseconds whatever the size), how long the whole adoption
// takes (the concurrent index build dominates), and how large the delivery-order index and the
// table get per row. `node bench/adopt.js [rows]`, 2000000 by default. Results to stdout.

import pg from 'pg';
import { adoptEventsTable } from '../dist/store/adopt.js';
import { migrate } from '../dist/store/migrate.js';
import { cleanUp } from './cleanup.js';
import { openDatabase } from './database.js';

const rows = Number(process.argv[2] ?? 2_000_000);
const progress = (line) => process.stderr.write(`${line}\n`);

try {
  const database = await openDatabase({ databaseUrl: process.env.DATABASE_URL, progress });
  const pool = new pg.Pool({ connectionString: database.url, max: 3 });
  try {
    await migrate(pool);
    progress(`filling orders_events with ${rows} rows`);
    await pool.query(`create table orders_events (
      id bigserial primary key, aggregate_id text not null, event_type text not null,
      payload jsonb not null, occurred_at timestamptz not null default now())`);
    await pool.query(
      `insert into orders_events (aggregate_id, event_type, payload)
       select 'order-' || (i % 10000), 'order.placed', jsonb_build_object('amount', i) from generate_series(1, $1::integer) i`,
      [rows],
    );
    await pool.query('vacuum analyze orders_events');
    await pool.query('create table copy_events as select * from orders_events');
    const size = async (relation) => Number((await pool.query('select pg_relation_size($1) as size', [relation])).rows[0].size);

    // The columns alone, as --adopt adds them, on a copy of the table.
    const altered = performance.now();
    await pool.query(`alter table copy_events add column projd_era integer not null default projd.current_era(),
                                              add column projd_transaction_id xid8 not null default '0'`);
    await pool.query('alter table copy_events alter column projd_transaction_id set default pg_current_xact_id()');
    const alterMs = performance.now() - altered;

    const heapBefore = await size('orders_events');
    const started = performance.now();
    await adoptEventsTable(pool, {
      table: 'orders_events',
      columns: { position: 'id', streamId: 'aggregate_id', type: 'event_type', data: 'payload', createdAt: 'occurred_at' },
    });
    const adoptMs = performance.now() - started;
    const orderIndex = await size('orders_events_projd_order_idx');
    const result = {
      rows,
      server: database.serverVersion,
      addColumnsMs: Math.round(alterMs),
      adoptMs: Math.round(adoptMs),
      tableBytesBefore: heapBefore,
      tableBytesAfter: await size('orders_events'),
      orderIndexBytes: orderIndex,
      orderIndexBytesPerRow: Math.round((orderIndex / rows) * 10) / 10,
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await pool.end();
  }
} finally {
  await cleanUp();
}
