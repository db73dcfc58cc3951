// The read model every contender builds: projections/balances.ts, in a table of its own.
// The SQL is that projection's, with the table name swapped.

import pg from 'pg';

export const OPENED = 'account.opened';
export const CREDITED = 'account.credited';
export const DEBITED = 'account.debited';

export function createTableSql(table) {
  return /* sql */ `
    create table if not exists ${pg.escapeIdentifier(table)} (
      account_id text primary key,
      owner text,
      balance bigint not null default 0,
      updated_position bigint not null
    )`;
}

/** $1 stream id, $2 owner, $3 position. */
export function openedSql(table) {
  const t = pg.escapeIdentifier(table);
  return /* sql */ `insert into ${t} (account_id, owner, updated_position) values ($1, $2, $3)
         on conflict (account_id) do update set owner = excluded.owner, updated_position = excluded.updated_position`;
}

/** $1 stream id, $2 signed amount, $3 position. */
export function amountSql(table) {
  const t = pg.escapeIdentifier(table);
  return /* sql */ `insert into ${t} (account_id, balance, updated_position) values ($1, $2, $3)
     on conflict (account_id) do update
       set balance = ${t}.balance + excluded.balance, updated_position = excluded.updated_position`;
}

/**
 * One event applied the way the balances projection applies it: one upsert, one round trip.
 * `event` has the store's column names; `position` may be a string (pg's bigint) or a bigint.
 */
export async function applyEvent(client, statements, event) {
  switch (event.type) {
    case OPENED:
      await client.query(statements.opened, [event.stream_id, event.data.owner, event.position]);
      break;
    case CREDITED:
      await client.query(statements.amount, [event.stream_id, event.data.amount, event.position]);
      break;
    case DEBITED:
      await client.query(statements.amount, [event.stream_id, -event.data.amount, event.position]);
      break;
    default:
      break; // not a balances event
  }
}

export function statementsFor(table) {
  return { opened: openedSql(table), amount: amountSql(table) };
}

/**
 * The whole read model as one set-based query over events up to position $1: the ceiling every
 * contender is measured against, and the reference each result is checked against. The last
 * event of a stream in delivery order is its highest position here, because the store is
 * written in position order (see store.js).
 */
export const expectedSql = /* sql */ `
  select e.stream_id as account_id,
         max(e.data ->> 'owner') filter (where e.type = '${OPENED}') as owner,
         coalesce(sum(case e.type
                        when '${CREDITED}' then (e.data ->> 'amount')::bigint
                        when '${DEBITED}' then -(e.data ->> 'amount')::bigint
                      end), 0) as balance,
         max(e.position) as updated_position
    from projd.events e
   where e.type in ('${OPENED}', '${CREDITED}', '${DEBITED}')
     and e.position <= $1
   group by e.stream_id`;

/** Drops the contender's table; each contender creates it again, as its own setup. */
export async function dropTable(client, table) {
  await client.query(`drop table if exists ${pg.escapeIdentifier(table)}`);
}

/**
 * Checks `table` row by row against the set-based result over events up to `upTo`, and, when
 * `totals` is given, against totals taken from the generated data itself. Throws on any difference.
 */
export async function verifyReadModel(client, table, { upTo, totals }) {
  const t = pg.escapeIdentifier(table);
  const { rows } = await client.query(
    /* sql */ `
    with expected as (${expectedSql})
    select coalesce(x.account_id, a.account_id) as account_id,
           x.owner as expected_owner, a.owner,
           x.balance::text as expected_balance, a.balance::text as balance,
           x.updated_position::text as expected_position, a.updated_position::text as position
      from expected x
      full join ${t} a on a.account_id = x.account_id
     where x.account_id is null or a.account_id is null
        or a.owner is distinct from x.owner
        or a.balance <> x.balance
        or a.updated_position <> x.updated_position
     order by 1
     limit 5`,
    [String(upTo)],
  );
  if (rows.length > 0) {
    throw new Error(`${table} differs from the set-based result, e.g. ${JSON.stringify(rows)}`);
  }
  if (totals) {
    const { rows: [actual] } = await client.query(`select count(*)::int as accounts, coalesce(sum(balance), 0)::text as total from ${t}`);
    if (actual.accounts !== totals.accounts || actual.total !== totals.total) {
      throw new Error(
        `${table}: ${actual.accounts} accounts holding ${actual.total}, but the generated data has ` +
          `${totals.accounts} accounts holding ${totals.total}`,
      );
    }
  }
}
