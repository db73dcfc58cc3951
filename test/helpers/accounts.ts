import type pg from 'pg';
import { expect } from 'vitest';

/**
 * One read model, `accounts`, written in each handler form, for tests that compare the forms:
 * per account its balance and event count (sums), the type of its last event (last write
 * wins) and the lowest balance it reached (strict per-event order). Every application of an
 * event is counted in `<name>_applied`. An event whose data has `poison: true` makes
 * PostgreSQL refuse it (division by zero) in every form.
 */
export type AccountsForm = 'perEvent' | 'sqlBatch' | 'moduleBatch' | 'sqlBatchWithHandlers' | 'moduleBatchWithHandlers';

export interface AccountsOptions {
  name: string;
  form: AccountsForm;
  onError?: 'park' | 'stop';
  maxAttempts?: number;
  batchSize?: number;
  /** Apply poison events like the others (a fixed projection, for `failed retry`). */
  cured?: boolean;
}

const TYPES = `['account.credited', 'account.debited']`;

/** The `batch:` SQL of the set-based form: one statement per pattern (see docs/projections.md). */
export function accountsBatchSql(name: string, cured = false): string[] {
  const divisor = cured ? '1' : `(case when e.data ? 'poison' then 0 else 1 end)`;
  const delta = `case e.type when 'account.debited' then -1 else 1 end * (e.data->>'amount')::bigint`;
  return [
    `insert into ${name}_applied (position, stream_id, stream_version, times)
     select e.position, e.stream_id, e.stream_version, 1 / ${divisor}
       from projd.batch_events() e
     on conflict (position) do update set times = ${name}_applied.times + 1`,
    // Strict order: the balance after each event, from the balance before the batch.
    `with running as (
       select e.stream_id,
              coalesce(a.balance, 0) + sum(${delta}) over (partition by e.stream_id order by e.position) as balance_after
         from projd.batch_events() e left join ${name} a on a.account_id = e.stream_id)
     insert into ${name} as a (account_id, low_balance)
     select stream_id, min(balance_after) from running group by stream_id
     on conflict (account_id) do update set low_balance = least(a.low_balance, excluded.low_balance)`,
    // Sums and counts.
    `insert into ${name} as a (account_id, balance, events)
     select e.stream_id, sum(${delta}), count(*) from projd.batch_events() e group by e.stream_id
     on conflict (account_id) do update set balance = a.balance + excluded.balance, events = a.events + excluded.events`,
    // Last write wins.
    `insert into ${name} as a (account_id, last_type)
     select distinct on (e.stream_id) e.stream_id, e.type from projd.batch_events() e order by e.stream_id, e.position desc
     on conflict (account_id) do update set last_type = excluded.last_type`,
  ];
}

/** The source of a projection module writing the accounts read model in `form`. */
export function accountsProjectionSource({ name, form, onError, maxAttempts, batchSize, cured = false }: AccountsOptions): string {
  const poisoned = cured ? '1' : '(e.data.poison ? 0 : 1)';
  const withHandlers = form === 'perEvent' || form.endsWith('WithHandlers');
  const keys = [
    onError === undefined ? '' : `onError: '${onError}',`,
    maxAttempts === undefined ? '' : `maxAttempts: ${maxAttempts},`,
    batchSize === undefined ? '' : `batchSize: ${batchSize},`,
    form === 'perEvent' ? '' : `eventTypes: ${TYPES},`,
    withHandlers ? `handlers: { 'account.credited': applyOne, 'account.debited': applyOne },` : '',
    form.startsWith('sqlBatch') ? `batch: ${JSON.stringify(accountsBatchSql(name, cured))},` : '',
    form.startsWith('moduleBatch') ? 'handleBatch: applyMany,' : '',
  ].join('\n  ');
  return `import { defineProjection } from 'projd';

const delta = (event) => (event.type === 'account.debited' ? -1n : 1n) * BigInt(event.data.amount);

async function applyOne(event, db) {
  await db.query(
    'insert into ${name}_applied (position, stream_id, stream_version, times) values ($1, $2, $3, 1 / $4::integer) ' +
      'on conflict (position) do update set times = ${name}_applied.times + 1',
    [event.position, event.streamId, event.streamVersion, ${cured ? '1' : 'event.data.poison ? 0 : 1'}],
  );
  await db.query(
    'insert into ${name} as a (account_id, balance, events, low_balance, last_type) values ($1, $2, 1, $2, $3) ' +
      'on conflict (account_id) do update set balance = a.balance + excluded.balance, events = a.events + 1, ' +
      'low_balance = least(a.low_balance, a.balance + excluded.balance), last_type = excluded.last_type',
    [event.streamId, delta(event), event.type],
  );
}

// Reduces the batch per account in JavaScript, then writes each table with one unnest statement.
async function applyMany(events, db) {
  await db.query(
    'insert into ${name}_applied (position, stream_id, stream_version, times) ' +
      'select p, s, v, 1 / t from unnest($1::bigint[], $2::text[], $3::integer[], $4::integer[]) as u(p, s, v, t) ' +
      'on conflict (position) do update set times = ${name}_applied.times + 1',
    [events.map((e) => e.position), events.map((e) => e.streamId), events.map((e) => e.streamVersion),
     events.map((e) => ${poisoned})],
  );
  const ids = [...new Set(events.map((e) => e.streamId))];
  const { rows } = await db.query(
    'select account_id, balance::text as balance, events, low_balance::text as low_balance, last_type from ${name} where account_id = any($1)',
    [ids],
  );
  const accounts = new Map(rows.map((r) => [r.account_id, { balance: BigInt(r.balance), events: r.events, low: BigInt(r.low_balance), last: r.last_type }]));
  for (const event of events) {
    const account = accounts.get(event.streamId) ?? { balance: 0n, events: 0, low: null, last: null };
    account.balance += delta(event);
    account.events += 1;
    account.low = account.low === null || account.balance < account.low ? account.balance : account.low;
    account.last = event.type;
    accounts.set(event.streamId, account);
  }
  const changed = ids.map((id) => [id, accounts.get(id)]);
  await db.query(
    'insert into ${name} (account_id, balance, events, low_balance, last_type) ' +
      'select * from unnest($1::text[], $2::bigint[], $3::integer[], $4::bigint[], $5::text[]) ' +
      'on conflict (account_id) do update set balance = excluded.balance, events = excluded.events, ' +
      'low_balance = excluded.low_balance, last_type = excluded.last_type',
    [changed.map(([id]) => id), changed.map(([, a]) => String(a.balance)), changed.map(([, a]) => a.events),
     changed.map(([, a]) => String(a.low)), changed.map(([, a]) => a.last)],
  );
}

export default defineProjection({
  name: '${name}',
  version: 1,
  setup: [
    'create table if not exists ${name} (account_id text primary key, balance bigint not null default 0, ' +
      'events integer not null default 0, low_balance bigint, last_type text)',
    'create table if not exists ${name}_applied (position bigint primary key, stream_id text not null, ' +
      'stream_version integer not null, times integer not null default 1)',
  ],
  reset: ['truncate ${name}', 'truncate ${name}_applied'],
  ${keys}
});
`;
}

/**
 * Appends `count` account events over `streams` streams, continuing each stream's versions:
 * every fifth a debit, amounts deterministic. `poison` lists the indexes (0-based, in this
 * call) of events marked `poison: true`.
 */
export async function appendAccountEvents(
  pool: pg.Pool,
  { count, streams, poison = [] }: { count: number; streams: number; poison?: number[] },
): Promise<void> {
  await pool.query(
    `with next as (select i, 'account-' || (i % $2) as stream_id from generate_series(0, $1::int - 1) i)
     insert into projd.events (stream_id, stream_version, type, data)
     select n.stream_id,
            coalesce((select max(stream_version) from projd.events e where e.stream_id = n.stream_id), 0)
              + row_number() over (partition by n.stream_id order by n.i),
            case when n.i % 5 = 4 then 'account.debited' else 'account.credited' end,
            case when n.i = any($3::int[]) then jsonb_build_object('amount', 1 + n.i % 97, 'poison', true)
                 else jsonb_build_object('amount', 1 + n.i % 97) end
       from next n
      order by n.i`,
    [count, streams, poison],
  );
}

/** The read model as one line per account, and how many events were applied, how often at most. */
export async function accountsChecksum(pool: pg.Pool, name: string): Promise<{ accounts: string; applied: number; maxTimes: number }> {
  const { rows } = await pool.query<{ accounts: string | null; applied: string; max_times: number | null }>(`
    select (select md5(string_agg(concat_ws(':', account_id, balance, events, low_balance, last_type), ',' order by account_id))
              from ${name}) as accounts,
           (select count(*) from ${name}_applied) as applied,
           (select max(times) from ${name}_applied) as max_times`);
  return { accounts: rows[0]!.accounts ?? '', applied: Number(rows[0]!.applied), maxTimes: rows[0]!.max_times ?? 0 };
}

/** Every form's read model equals the first one's, with each event applied once. */
export async function expectSameReadModel(pool: pg.Pool, names: readonly string[], applied: number): Promise<void> {
  const checksums = await Promise.all(names.map(async (name) => ({ name, ...(await accountsChecksum(pool, name)) })));
  const [reference] = checksums;
  for (const checksum of checksums) {
    expect(checksum).toEqual({ ...reference, name: checksum.name, applied, maxTimes: applied === 0 ? 0 : 1 });
  }
  expect(reference!.accounts).not.toBe('');
}

/** Applied events, counting 0 before setup has run. */
export async function countAccountsApplied(pool: pg.Pool, name: string): Promise<number> {
  try {
    return (await accountsChecksum(pool, name)).applied;
  } catch (error) {
    if ((error as { code?: string }).code === '42P01') return 0;
    throw error;
  }
}
