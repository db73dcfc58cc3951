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

/**
 * A batch of balances events reduced per account, in delivery order, to what one upsert per
 * account needs: the owner of its last `account.opened` (null if none), the sum of its signed
 * amounts, and its last position. `read` maps an event to `{ streamId, type, data, position }`,
 * so the same reduction serves rows of the store and projd's events.
 * @returns four parallel arrays, the parameters of `unnestUpsertSql`.
 */
export function reduceBalances(events, read = (event) => event) {
  const accounts = new Map();
  for (const event of events) {
    const { streamId, type, data, position } = read(event);
    let account = accounts.get(streamId);
    if (account === undefined) {
      account = { owner: null, delta: 0, position: null };
      accounts.set(streamId, account);
    }
    if (type === OPENED) account.owner = data.owner;
    else if (type === CREDITED) account.delta += data.amount;
    else if (type === DEBITED) account.delta -= data.amount;
    else continue; // not a balances event
    account.position = position;
  }
  const ids = [];
  const owners = [];
  const deltas = [];
  const positions = [];
  for (const [id, account] of accounts) {
    if (account.position === null) continue;
    ids.push(id);
    owners.push(account.owner);
    deltas.push(account.delta);
    positions.push(String(account.position));
  }
  return [ids, owners, deltas, positions];
}

/**
 * The conflict clause of a batch upsert: an account's balance grows by the batch's sum, its
 * owner is the batch's last owner if the batch opened it (the store's `account.opened` always
 * names one), and its position is the batch's last.
 */
function batchConflictSql(t) {
  return /* sql */ `on conflict (account_id) do update
       set owner = coalesce(excluded.owner, ${t}.owner),
           balance = ${t}.balance + excluded.balance,
           updated_position = excluded.updated_position`;
}

/** One upsert for a whole batch: $1 account ids, $2 owners, $3 balance deltas, $4 positions (`reduceBalances`). */
export function unnestUpsertSql(table) {
  const t = pg.escapeIdentifier(table);
  return /* sql */ `insert into ${t} (account_id, owner, balance, updated_position)
    select account_id, owner, balance, updated_position
      from unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) as batch(account_id, owner, balance, updated_position)
    ${batchConflictSql(t)}`;
}

/**
 * The SQL batch handler of the balances read model: the batch's events, read in place through
 * projd.batch_events(), grouped per account (sums for the balance, the last owner and the last
 * position by position), in one upsert. No parameters: projd sets the batch's bounds.
 */
export function batchSql(table) {
  const t = pg.escapeIdentifier(table);
  return /* sql */ `insert into ${t} (account_id, owner, balance, updated_position)
    select e.stream_id,
           (array_agg(e.data ->> 'owner' order by e.position desc) filter (where e.type = '${OPENED}'))[1],
           coalesce(sum(case e.type
                          when '${CREDITED}' then (e.data ->> 'amount')::bigint
                          when '${DEBITED}' then -(e.data ->> 'amount')::bigint
                        end), 0),
           max(e.position)
      from projd.batch_events() e
     where e.type in ('${OPENED}', '${CREDITED}', '${DEBITED}')
     group by e.stream_id
    ${batchConflictSql(t)}`;
}

/**
 * The balances projection as a YAML file, a statement per event type (the form projd sends in
 * pipeline): what a user writes in `projections/`.
 */
export function balancesYaml({ name, table }) {
  const t = pg.escapeIdentifier(table);
  const indent = (sql) => sql.trim().split('\n').map((line) => `    ${line.trim()}`).join('\n');
  const amount = (signed) =>
    indent(`insert into ${t} (account_id, balance, updated_position) values (:streamId, ${signed}, :position)
      on conflict (account_id) do update
        set balance = ${t}.balance + excluded.balance, updated_position = excluded.updated_position`);
  return `name: ${name}
version: 1
setup: |
${indent(createTableSql(table))}
reset: truncate ${t}
handlers:
  ${OPENED}: |
${indent(`insert into ${t} (account_id, owner, updated_position) values (:streamId, :data ->> 'owner', :position)
      on conflict (account_id) do update set owner = excluded.owner, updated_position = excluded.updated_position`)}
  ${CREDITED}: |
${amount("(:data ->> 'amount')::bigint")}
  ${DEBITED}: |
${amount("-(:data ->> 'amount')::bigint")}
`;
}

/**
 * The SQL batch handler of `batchSql` as a YAML file with an upcaster per type, so that every
 * event of the store (all at schema version 1) is lifted one step on its way to the batch SQL:
 * what upcasting costs that form.
 */
export function upcastBatchYaml({ name, table }) {
  const t = pg.escapeIdentifier(table);
  const indent = (sql) => sql.trim().split('\n').map((line) => `  ${line.trim()}`).join('\n');
  const step = `\n    1: data || jsonb_build_object('currency', 'EUR')`;
  return `name: ${name}
version: 1
setup: |
${indent(createTableSql(table))}
reset: truncate ${t}
eventTypes: [${OPENED}, ${CREDITED}, ${DEBITED}]
upcasters:
  ${OPENED}:${step}
  ${CREDITED}:${step}
  ${DEBITED}:${step}
batch: |
${indent(batchSql(table))}
`;
}
