import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { expect } from 'vitest';

/** Source of the `ledger` fixture projection, to put in a test project's `projections/`. */
export async function ledgerProjectionSource(): Promise<string> {
  return readFile(fileURLToPath(new URL('../fixtures/projections/ledger.ts', import.meta.url)), 'utf8');
}

/**
 * Appends `count` ledger events over `streams` streams, continuing each stream's versions,
 * in multi-row inserts of `chunk` events. Amounts are deterministic, so balances can be
 * checked against SQL over the events table.
 */
export async function appendLedgerEvents(
  pool: pg.Pool,
  { count, streams, chunk = 1000, prefix = 'account' }: { count: number; streams: number; chunk?: number; prefix?: string },
): Promise<void> {
  for (let done = 0; done < count; done += chunk) {
    const size = Math.min(chunk, count - done);
    await pool.query(
      `with next as (
         select i, $4 || '-' || (i % $2) as stream_id
           from generate_series($1::int, $1::int + $3::int - 1) i
       )
       insert into projd.events (stream_id, stream_version, type, data)
       select n.stream_id,
              coalesce((select max(stream_version) from projd.events e where e.stream_id = n.stream_id), 0)
                + row_number() over (partition by n.stream_id order by n.i),
              case when n.i % 5 = 4 then 'account.debited' else 'account.credited' end,
              jsonb_build_object('amount', 1 + n.i % 97)
         from next n
        order by n.i`,
      [done, streams, size, prefix],
    );
  }
}

/** Appends one `account.credited` of 7 to `streamId`, at `version`, with a plain INSERT. */
export async function creditLedger(pool: pg.Pool, streamId: string, version: number): Promise<void> {
  await pool.query(
    `insert into projd.events (stream_id, stream_version, type, data) values ($1, $2, 'account.credited', '{"amount": 7}')`,
    [streamId, version],
  );
}

export async function countEvents(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ n: string }>('select count(*) as n from projd.events');
  return Number(rows[0]!.n);
}

/** How many distinct events the ledger has applied (committed). */
export async function countApplied(pool: pg.Pool): Promise<number> {
  try {
    const { rows } = await pool.query<{ n: string }>('select count(*) as n from ledger_applied');
    return Number(rows[0]!.n);
  } catch (error) {
    // undefined_table: the daemon has not run the projection's setup yet.
    if ((error as { code?: string }).code === '42P01') return 0;
    throw error;
  }
}

/**
 * The ledger read model is exactly what SQL computes from the events: every event applied
 * once, none missing, each stream in version order, balances equal.
 */
export async function expectLedgerExact(pool: pg.Pool): Promise<void> {
  const { rows: counts } = await pool.query<{ events: string; applied: string; repeated: string; missing: string }>(`
    select (select count(*) from projd.events) as events,
           (select count(*) from ledger_applied) as applied,
           (select count(*) from ledger_applied where times <> 1) as repeated,
           (select count(*) from projd.events e where not exists
              (select 1 from ledger_applied a where a.position = e.position)) as missing`);
  expect(counts[0]).toMatchObject({ repeated: '0', missing: '0' });
  expect(counts[0]!.applied).toBe(counts[0]!.events);

  const { rows: outOfOrder } = await pool.query(`
    select stream_id from (
      select stream_id, stream_version,
             row_number() over (partition by stream_id order by applied_seq) as nth
        from ledger_applied) s
     where stream_version <> nth
     limit 5`);
  expect(outOfOrder).toEqual([]);

  const { rows: wrongBalances } = await pool.query(`
    with expected as (
      select stream_id as account_id,
             sum(case type when 'account.debited' then -(data->>'amount')::bigint
                           else (data->>'amount')::bigint end) as balance
        from projd.events group by stream_id)
    select e.account_id, e.balance as expected, b.balance as actual
      from expected e full join ledger_balances b using (account_id)
     where e.balance is distinct from b.balance
     limit 5`);
  expect(wrongBalances).toEqual([]);
}
