import { setTimeout as pause } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startDaemon } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { appendLedgerEvents, countApplied, countEvents, expectLedgerExact, ledgerProjectionSource } from '../helpers/ledger.js';
import { writeProject } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

const db = await createTestDatabase();
let project: Awaited<ReturnType<typeof writeProject>>;

beforeAll(async () => {
  // Small batches: the replay and the daemon take many turns at the projection's lock.
  project = await writeProject({
    'projd.yaml': 'projections:\n  batchSize: 20\nmetrics:\n  port: 0\n',
    'projections/ledger.ts': await ledgerProjectionSource(),
  });
  await appendLedgerEvents(db.pool, { count: 2_000, streams: 100 });
});

afterAll(async () => {
  await project?.cleanup();
});

const allApplied = async () => (await countApplied(db.pool)) === (await countEvents(db.pool));

describe('projd replay while a daemon runs elsewhere', () => {
  const name = 'rebuilds with events arriving; the daemon shares the work, sets nothing up again and stays live';
  it(name, { timeout: 120_000 }, async () => {
    const env = { DATABASE_URL: db.url };
    const daemon = startDaemon(['run'], { cwd: project.dir, env });
    await waitFor(allApplied, { timeoutMs: 60_000, message: 'the daemon caught up' });
    const { rows: before } = await db.pool.query<{ max: string }>('select max(applied_seq) from ledger_applied');
    const logsBefore = daemon.logs().length;

    // Appends during the replay, each waking the daemon, which then competes for batches. A
    // fixed amount, paced below the catch-up rate, so that the replay can catch up.
    let replaying = true;
    let appendedDuring = 0;
    const appending = (async () => {
      for (let chunk = 0; chunk < 25 && replaying; chunk += 1) {
        await appendLedgerEvents(db.pool, { count: 20, streams: 20, prefix: 'during' });
        appendedDuring += 20;
        await pause(40);
      }
    })();
    const replay = await runCli(['replay', 'ledger'], { cwd: project.dir, env, timeoutMs: 90_000 }).finally(() => {
      replaying = false;
    });
    await appending;
    expect(replay.stderr).toBe('');
    expect(replay.code).toBe(0);
    expect(replay.stdout).toMatch(/^replayed ledger: [\d,]+ events in /m);
    expect(appendedDuring).toBeGreaterThan(0);

    // The daemon goes on live from where the replay left the projection.
    await appendLedgerEvents(db.pool, { count: 300, streams: 30, prefix: 'after' });
    await waitFor(allApplied, { timeoutMs: 60_000, message: 'the daemon applied the events appended after the replay' });
    await expectLedgerExact(db.pool);

    // Every row was written after the reset: the replay cleared everything, mid-flight included.
    const { rows: after } = await db.pool.query<{ min: string }>('select min(applied_seq) from ledger_applied');
    expect(Number(after[0]!.min)).toBeGreaterThan(Number(before[0]!.max));
    // Same version in the checkpoint: the daemon did not take the reset for a version change.
    const since = daemon.logs().slice(logsBefore);
    expect(since.filter((line) => line.msg === 'projection.setup')).toEqual([]);
    expect(since.filter((line) => line.msg === 'projection.state' && line.to === 'version_ahead')).toEqual([]);

    expect(await daemon.stop()).toBe(0);
  });
});
