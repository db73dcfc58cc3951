import { defineProjection, type ProjdEvent, type ProjectionDb } from 'projd';

/** Event type → its data. Amounts are integers in minor units (cents), so sums stay exact. */
type AccountEvents = {
  'account.opened': { owner: string };
  'account.credited': { amount: number };
  'account.debited': { amount: number };
};

/** One row per account: its owner and current balance. */
export default defineProjection<AccountEvents>({
  name: 'balances',
  version: 1,
  setup: `
    create table if not exists balances (
      account_id text primary key,
      owner text,
      balance bigint not null default 0,
      updated_position bigint not null
    )`,
  reset: 'truncate balances',
  handlers: {
    'account.opened': (event, db) => {
      db.query(
        `insert into balances (account_id, owner, updated_position) values ($1, $2, $3)
         on conflict (account_id) do update set owner = excluded.owner, updated_position = excluded.updated_position`,
        [event.streamId, event.data.owner, event.position],
      );
    },
    'account.credited': (event, db) => addToBalance(db, event, event.data.amount),
    'account.debited': (event, db) => addToBalance(db, event, -event.data.amount),
  },
});

function addToBalance(db: ProjectionDb, event: ProjdEvent, amount: number): void {
  // An account credited before its account.opened event still gets a row.
  db.query(
    `insert into balances (account_id, balance, updated_position) values ($1, $2, $3)
     on conflict (account_id) do update
       set balance = balances.balance + excluded.balance, updated_position = excluded.updated_position`,
    [event.streamId, amount, event.position],
  );
}
