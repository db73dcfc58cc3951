import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startDaemon } from '../helpers/cli.js';
import { startIsolatedPostgres, type IsolatedPostgres } from '../helpers/database.js';
import { appendLedgerEvents, countApplied, countEvents, expectLedgerExact, ledgerProjectionSource } from '../helpers/ledger.js';
import { writeProject } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

// Two clusters: the original, whose transaction ids have run ahead, and a fresh one that the
// store is copied into, as pg_dump/restore or logical replication would: same rows, same
// transaction ids, no triggers fired.
let original: IsolatedPostgres;
let restored: IsolatedPostgres;

beforeAll(async () => {
  [original, restored] = await Promise.all([startIsolatedPostgres(), startIsolatedPostgres()]);
});

afterAll(async () => {
  await Promise.all([original?.stop(), restored?.stop()]);
});

const TABLES = ['projd.events', 'projd.checkpoints', 'ledger_balances', 'ledger_applied'] as const;

async function copyStore(from: pg.Pool, to: pg.Pool): Promise<void> {
  const client = await to.connect();
  try {
    await client.query('begin');
    await client.query('set local session_replication_role = replica'); // as a logical apply worker does
    await client.query(`create table if not exists ledger_balances (account_id text primary key, balance bigint not null)`);
    await client.query(`create table if not exists ledger_applied (position bigint primary key, stream_id text not null,
      stream_version integer not null, applied_seq bigserial not null, times integer not null default 1)`);
    for (const table of TABLES) {
      const { rows } = await from.query(`select coalesce(json_agg(t), '[]') as rows from ${table} t`);
      await client.query(
        `insert into ${table} overriding system value select * from json_populate_recordset(null::${table}, $1)`,
        [JSON.stringify(rows[0].rows)],
      );
    }
    // pg_dump carries sequences' next values over, too.
    await client.query(`select setval(pg_get_serial_sequence('projd.events', 'position'), (select max(position) from projd.events))`);
    await client.query(`select setval(pg_get_serial_sequence('ledger_applied', 'applied_seq'), (select max(applied_seq) from ledger_applied))`);
    await client.query('commit');
  } finally {
    client.release();
  }
}

describe('a store restored into another cluster', () => {
  it('is refused until `projd migrate --new-era`, and then every new event is applied once', async () => {
    // Run the original cluster's transaction ids well ahead of a fresh cluster's.
    await original.pool.query(`
      create procedure burn_xids(n integer) language plpgsql as $$
      begin
        for i in 1..n loop perform pg_current_xact_id(); commit; end loop;
      end $$`);
    await original.pool.query('call burn_xids(3000)');
    await appendLedgerEvents(original.pool, { count: 2_000, streams: 50 });

    const project = await writeProject({
      'projd.yaml': 'metrics:\n  port: 0\n',
      'projections/ledger.ts': await ledgerProjectionSource(),
    });
    try {
      const first = startDaemon(['run'], { cwd: project.dir, env: { DATABASE_URL: original.url } });
      await waitFor(async () => (await countApplied(original.pool)) === 2_000, { timeoutMs: 30_000, message: 'original caught up' });
      expect(await first.stop()).toBe(0);

      await copyStore(original.pool, restored.pool);
      const env = { DATABASE_URL: restored.url };

      const refused = await runCli(['run'], { cwd: project.dir, env });
      expect(refused.code).toBe(1);
      expect(refused.stderr.trim().split('\n')).toHaveLength(1);
      expect(refused.stderr).toMatch(/restored or migrated into another cluster.*projd migrate --new-era/);

      // Writers are refused too, so nothing lands behind the checkpoints before the repair.
      await expect(
        restored.pool.query(
          "insert into projd.events (stream_id, stream_version, type, data) values ('account-new', 1, 'account.credited', '{\"amount\": 5}')",
        ),
      ).rejects.toMatchObject({ code: '55000' });

      const repair = await runCli(['migrate', '--new-era'], { cwd: project.dir, env });
      expect(repair.stderr).toBe('');
      expect(repair.code).toBe(0);
      expect(repair.stdout).toContain('started era 1');
      const again = await runCli(['migrate', '--new-era'], { cwd: project.dir, env });
      expect(again.stdout).toContain('no new era needed');

      await appendLedgerEvents(restored.pool, { count: 500, streams: 60 });
      const daemon = startDaemon(['run'], { cwd: project.dir, env });
      await waitFor(async () => (await countApplied(restored.pool)) === (await countEvents(restored.pool)), {
        timeoutMs: 30_000,
        message: 'the new events applied after the repair',
      });
      expect(await countEvents(restored.pool)).toBe(2_500);
      expect(await daemon.stop()).toBe(0);
      await expectLedgerExact(restored.pool);
    } finally {
      await project.cleanup();
    }
  }, 120_000);
});
