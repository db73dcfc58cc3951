// The event store the contenders read: migrated by projd, then filled with set-based SQL.

import { migrateStore } from '../dist/index.js';
import { CREDITED, DEBITED, OPENED } from './readModel.js';

/** Events per writing transaction: many transactions, as in a real store, but few round trips. */
const EVENTS_PER_TRANSACTION = 100;
const DEBIT_SHARE = 0.3;
const MAX_AMOUNT = 1000;

/**
 * Every stream gets `events / streams` events (the first `events % streams` one more), as a
 * Poisson process of its own: version 1 is `account.opened`, the rest are credits and debits of
 * 1 to 1000 cents. Merging the streams by time interleaves them the way live traffic does, while
 * each stream stays in stream_version order, which the store's insert trigger insists on.
 * The same seed gives the same store.
 */
function seedSql({ events, streams }) {
  return /* sql */ `
    create unlogged table bench_seed as
    with counts as (
      select s, ${Math.floor(events / streams)} + (s < ${events % streams})::int as n
        from generate_series(0, ${streams - 1}) s
    ),
    draws as (
      select s, v, random() as gap, random() as kind, random() as size
        from counts, generate_series(1, n) v
    ),
    timed as (
      select s, v, kind, size, sum(-ln(1 - gap)) over (partition by s order by v) as at
        from draws
    )
    select row_number() over (order by at, s, v) as seq,
           'account-' || lpad(s::text, 6, '0') as stream_id,
           v as stream_version,
           case when v = 1 then '${OPENED}' when kind < ${DEBIT_SHARE} then '${DEBITED}' else '${CREDITED}' end as type,
           case when v = 1 then jsonb_build_object('owner', 'owner-' || s)
                else jsonb_build_object('amount', 1 + floor(size * ${MAX_AMOUNT})::int) end as data
      from timed`;
}

// A DO block may commit, so the store is written in many transactions from one round trip.
const appendSql = /* sql */ `
  do $$
  declare
    next_seq bigint := 1;
    last_seq bigint := (select max(seq) from bench_seed);
  begin
    while next_seq <= last_seq loop
      insert into projd.events (stream_id, stream_version, type, data)
      select stream_id, stream_version, type, data
        from bench_seed
       where seq >= next_seq and seq < next_seq + ${EVENTS_PER_TRANSACTION}
       order by seq;
      commit;
      next_seq := next_seq + ${EVENTS_PER_TRANSACTION};
    end loop;
  end
  $$`;

const totalsSql = /* sql */ `
  select count(distinct stream_id)::int as accounts,
         coalesce(sum(case type when '${CREDITED}' then (data ->> 'amount')::bigint
                                when '${DEBITED}' then -(data ->> 'amount')::bigint
                                else 0 end), 0)::text as total
    from bench_seed`;

/**
 * Migrates and fills the store. Returns what the checks need: the generated data's own totals,
 * the head position, and the position of the n-th event for contenders that stop early.
 */
export async function createStore(client, config, { events, streams }) {
  await migrateStore(config);
  await client.query('select setseed(0.42)');
  await client.query(seedSql({ events, streams }));
  await client.query('alter table bench_seed add primary key (seq)');
  await client.query(appendSql);
  const { rows: [totals] } = await client.query(totalsSql);
  await client.query('drop table bench_seed');
  await client.query('vacuum analyze projd.events');

  const { rows: [head] } = await client.query('select count(*)::int as events, max(position)::text as position from projd.events');
  if (head.events !== events) throw new Error(`the store holds ${head.events} events, expected ${events}`);
  return { events: head.events, accounts: totals.accounts, headPosition: head.position, totals };
}

/** The position of the n-th event in position order (1-based). */
export async function positionOf(client, n) {
  const { rows } = await client.query('select e.position::text as position from projd.events e order by e.position offset $1 limit 1', [n - 1]);
  return rows[0].position;
}

/** Each stream's last version, for a writer that appends after them. */
export async function lastVersions(client) {
  const { rows } = await client.query('select stream_id, max(stream_version) as version from projd.events group by stream_id order by stream_id');
  return rows.map((row) => ({ streamId: row.stream_id, version: row.version }));
}
