import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { advisoryLockTag } from '../../src/store/progress.js';
import { partLockKey } from '../../src/store/names.js';
import { startDaemon, type Daemon } from '../helpers/cli.js';
import { startIsolatedPostgres } from '../helpers/database.js';
import { appendLedgerEvents, countApplied, countEvents, expectLedgerExact, ledgerProjectionSource } from '../helpers/ledger.js';
import { writeProject } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

/** The advisory lock the ledger fixture's gate event waits for (see its `gate` data). */
const GATE = 4242;
const PARTS = 4;

// The daemon caught at the gate holds its batch (a transaction with an id) open, which holds
// back the xmin horizon of the whole server, so this file gets a server of its own.
const db = await startIsolatedPostgres();
let project: Awaited<ReturnType<typeof writeProject>>;

beforeAll(async () => {
  const ledger = (await ledgerProjectionSource()).replace('version: 1,', `version: 1,\n  partitions: ${PARTS},`);
  expect(ledger).toContain(`partitions: ${PARTS}`);
  project = await writeProject({
    'projd.yaml': 'projections:\n  batchSize: 50\nmetrics:\n  port: 0\n',
    'projections/ledger.ts': ledger,
  });
  await appendLedgerEvents(db.pool, { count: 10_000, streams: 100 });
});

afterAll(async () => {
  await project?.cleanup();
  await db.stop();
});

describe('two daemons running a projection of four parts', () => {
  it('share the parts, and apply each event once and each stream in order, when one is killed inside a batch', async () => {
    const env = { DATABASE_URL: db.url };
    const first = startDaemon(['run'], { cwd: project.dir, env });
    const second = startDaemon(['run'], { cwd: project.dir, env });

    // Live appends while both daemons' runners compete for the parts, batch by batch, until
    // both have been seen holding parts: a daemon slow to start must still find work to take.
    // Each part goes to whichever daemon takes its lock: both daemons hold parts.
    const owners = new Set<number>();
    await waitFor(
      async () => {
        await appendLedgerEvents(db.pool, { count: 100, streams: 100 });
        for (const pid of await partOwners(db.pool, [first, second])) owners.add(pid);
        return owners.size === 2;
      },
      { timeoutMs: 60_000, message: 'both daemons to hold parts of the projection' },
    );
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
      // Inside a batch: its backend holds the lock of the gate stream's part, and the batch has not committed.
      expect(inside.holdsPartLock).toBe(true);
      const killed = [first, second].find((daemon) => daemon.child.pid === inside.daemonPid);
      const survivor = killed === first ? second : first;
      expect(killed, `application_name '${inside.applicationName}' names one of the two daemons`).toBeDefined();

      // Appends go on while the killed daemon's parts change hands.
      await appendLedgerEvents(db.pool, { count: 500, streams: 100 });
      await killed!.kill9();
      // Its orphaned backend gets the gate, finds its client gone and rolls the batch back.
      await gate.query('select pg_advisory_unlock($1::bigint)', [GATE]);
      await appendLedgerEvents(db.pool, { count: 2_000, streams: 100 });
      await waitFor(async () => (await countApplied(db.pool)) === (await countEvents(db.pool)), {
        timeoutMs: 60_000,
        message: 'the surviving daemon applied every part, before and after the kill',
      });
      expect(await survivor.stop()).toBe(0);
    } finally {
      gate.release();
    }
    await expectLedgerExact(db.pool);
    const { rows } = await db.pool.query<{ part: number; parts: number }>(
      `select part, parts from projd.checkpoints where projection = 'ledger' order by part`,
    );
    expect(rows).toEqual([0, 1, 2, 3].map((part) => ({ part, parts: PARTS })));
  }, 180_000);
});

/** The daemon pids (from `projd batch host:pid`, as a batch names its connection) whose backends hold a part's lock right now. */
async function partOwners(pool: pg.Pool, daemons: Daemon[]): Promise<number[]> {
  const tags = [0, 1, 2, 3].map((part) => advisoryLockTag(partLockKey('ledger', part)));
  const { rows } = await pool.query<{ application_name: string }>(
    `select a.application_name
       from pg_locks l join pg_stat_activity a using (pid)
      where l.locktype = 'advisory' and l.granted and l.objsubid = 1
        and (l.classid::bigint, l.objid::bigint) in (select (t->>'classid')::bigint, (t->>'objid')::bigint
                                                      from jsonb_array_elements($1::jsonb) t)`,
    [JSON.stringify(tags)],
  );
  const pids = rows.map((row) => Number(/^projd (?:daemon|batch) .*:(\d+)$/.exec(row.application_name)?.[1]));
  return pids.filter((pid) => daemons.some((daemon) => daemon.child.pid === pid));
}

/**
 * The backend waiting for the gate, if any: the daemon it belongs to (from its application
 * name, `projd batch host:pid` while it runs a batch) and whether it holds the lock of the gate stream's part,
 * which a daemon takes only as the first statement of a batch and holds until that batch ends.
 */
async function batchAtGate(
  pool: pg.Pool,
): Promise<{ daemonPid: number; applicationName: string; holdsPartLock: boolean } | undefined> {
  const { rows: parts } = await pool.query<{ part: number }>(`select projd.stream_part('gate', $1) as part`, [PARTS]);
  const gate = advisoryLockTag(String(GATE));
  const part = advisoryLockTag(partLockKey('ledger', parts[0]!.part));
  const { rows } = await pool.query<{ application_name: string; holds_part_lock: boolean }>(
    `select a.application_name,
            exists (select 1 from pg_locks p
                     where p.pid = w.pid and p.locktype = 'advisory' and p.granted
                       and p.database = w.database and p.classid = $3::oid and p.objid = $4::oid and p.objsubid = 1)
              as holds_part_lock
       from pg_locks w join pg_stat_activity a using (pid)
      where w.locktype = 'advisory' and not w.granted
        and w.database = (select oid from pg_database where datname = current_database())
        and w.classid = $1::oid and w.objid = $2::oid and w.objsubid = 1`,
    [gate.classid, gate.objid, part.classid, part.objid],
  );
  const row = rows[0];
  const daemonPid = /^projd (?:daemon|batch) .*:(\d+)$/.exec(row?.application_name ?? '')?.[1];
  if (!row || daemonPid === undefined) return undefined;
  return { daemonPid: Number(daemonPid), applicationName: row.application_name, holdsPartLock: row.holds_part_lock };
}
