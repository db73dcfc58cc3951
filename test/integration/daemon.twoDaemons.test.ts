import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { advisoryLockKey } from '../../src/store/names.js';
import { startDaemon } from '../helpers/cli.js';
import { startIsolatedPostgres } from '../helpers/database.js';
import { appendLedgerEvents, countApplied, countEvents, expectLedgerExact, ledgerProjectionSource } from '../helpers/ledger.js';
import { writeProject } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

/** The advisory lock the ledger fixture's gate event waits for (see its `gate` data). */
const GATE = 4242;

// The daemon caught at the gate holds its batch (a transaction with an id) open, which holds
// back the xmin horizon of the whole server, so this file gets a server of its own.
const db = await startIsolatedPostgres();
let project: Awaited<ReturnType<typeof writeProject>>;

beforeAll(async () => {
  project = await writeProject({
    'projd.yaml': 'projections:\n  batchSize: 50\nmetrics:\n  port: 0\n',
    'projections/ledger.ts': await ledgerProjectionSource(),
  });
  await appendLedgerEvents(db.pool, { count: 10_000, streams: 100 });
});

afterAll(async () => {
  await project?.cleanup();
  await db.stop();
});

describe('two daemons on one database', () => {
  it('apply each event once, while events arrive and when one of them is killed inside a batch', async () => {
    const env = { DATABASE_URL: db.url };
    const first = startDaemon(['run'], { cwd: project.dir, env });
    const second = startDaemon(['run'], { cwd: project.dir, env });

    // Live appends while both compete for the projection's lock, batch by batch.
    for (let i = 0; i < 10; i += 1) await appendLedgerEvents(db.pool, { count: 500, streams: 100 });
    await waitFor(async () => (await countApplied(db.pool)) === (await countEvents(db.pool)), {
      timeoutMs: 60_000,
      message: 'both daemons together applied every event',
    });

    // Hold the gate, so the daemon whose batch reaches the gate event stops inside that batch.
    const gate = await db.pool.connect();
    try {
      await gate.query('select pg_advisory_lock($1::bigint)', [GATE]);
      await appendLedgerEvents(db.pool, { count: 120, streams: 100 });
      await db.pool.query(
        `insert into projd.events (stream_id, stream_version, type, data)
         values ('gate', 1, 'account.credited', jsonb_build_object('amount', 1, 'gate', $1::bigint))`,
        [GATE],
      );
      const inside = await waitFor(() => batchAtGate(db.pool), { message: 'a daemon to wait at the gate inside its batch' });
      // Inside a batch: its backend holds the projection's lock, and the batch has not committed.
      expect(inside.holdsProjectionLock).toBe(true);
      const killed = [first, second].find((daemon) => daemon.child.pid === inside.daemonPid);
      const survivor = killed === first ? second : first;
      expect(killed, `application_name '${inside.applicationName}' names one of the two daemons`).toBeDefined();

      await killed!.kill9();
      expect(await countApplied(db.pool)).toBeLessThan(await countEvents(db.pool));
      // Its orphaned backend gets the gate, finds its client gone and rolls the batch back.
      await gate.query('select pg_advisory_unlock($1::bigint)', [GATE]);

      // The survivor takes over whatever the killed one held, and stays live.
      await appendLedgerEvents(db.pool, { count: 2_000, streams: 100 });
      await waitFor(async () => (await countApplied(db.pool)) === (await countEvents(db.pool)), {
        timeoutMs: 60_000,
        message: 'the surviving daemon applied the events appended before and after the kill',
      });
      expect(await survivor.stop()).toBe(0);
    } finally {
      gate.release();
    }
    await expectLedgerExact(db.pool);
  }, 120_000);
});

/** Splits a 64-bit advisory lock key as pg_locks shows it: high half in classid, low half in objid. */
function lockKeyParts(key: bigint): { classid: string; objid: string } {
  const unsigned = BigInt.asUintN(64, key);
  return { classid: String(unsigned >> 32n), objid: String(unsigned & 0xffff_ffffn) };
}

/**
 * The backend waiting for the gate, if any: the daemon it belongs to (from its application
 * name, `projd batch host:pid` while it runs a batch) and whether it holds the projection's lock, which a daemon
 * takes only as the first statement of a batch and holds until that batch ends.
 */
async function batchAtGate(
  pool: pg.Pool,
): Promise<{ daemonPid: number; applicationName: string; holdsProjectionLock: boolean } | undefined> {
  const gate = lockKeyParts(BigInt(GATE));
  const projection = lockKeyParts(BigInt(advisoryLockKey('projection', 'ledger')));
  const { rows } = await pool.query<{ application_name: string; holds_projection_lock: boolean }>(
    `select a.application_name,
            exists (select 1 from pg_locks p
                     where p.pid = w.pid and p.locktype = 'advisory' and p.granted
                       and p.database = w.database and p.classid = $3::oid and p.objid = $4::oid and p.objsubid = 1)
              as holds_projection_lock
       from pg_locks w join pg_stat_activity a using (pid)
      where w.locktype = 'advisory' and not w.granted
        and w.database = (select oid from pg_database where datname = current_database())
        and w.classid = $1::oid and w.objid = $2::oid and w.objsubid = 1`,
    [gate.classid, gate.objid, projection.classid, projection.objid],
  );
  const row = rows[0];
  const daemonPid = /^projd (?:daemon|batch) .*:(\d+)$/.exec(row?.application_name ?? '')?.[1];
  if (!row || daemonPid === undefined) return undefined;
  return { daemonPid: Number(daemonPid), applicationName: row.application_name, holdsProjectionLock: row.holds_projection_lock };
}
