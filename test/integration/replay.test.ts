import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startDaemon, type LogLine } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { appendLedgerEvents, countApplied, countEvents, expectLedgerExact, ledgerProjectionSource } from '../helpers/ledger.js';
import { writeProject } from '../helpers/project.js';
import { cliTranscript } from '../helpers/transcript.js';
import { waitFor } from '../helpers/waitFor.js';

const EVENTS = 3_000;

// A second projection for --all: events per type, with a reset that drops its table, so the
// replay's setup has to create it again.
const TALLY = `import { defineProjection } from 'projd';
export default defineProjection({
  name: 'tally',
  version: 1,
  setup: 'create table if not exists tally (type text primary key, n bigint not null)',
  reset: 'drop table tally',
  handlers: Object.fromEntries(['account.credited', 'account.debited'].map((type) => [type, async (event, db) => {
    await db.query('insert into tally values ($1, 1) on conflict (type) do update set n = tally.n + 1', [event.type]);
  }])),
});
`;

const db = await createTestDatabase();
let project: Awaited<ReturnType<typeof writeProject>>;

beforeAll(async () => {
  project = await writeProject({
    'projd.yaml': 'projections:\n  batchSize: 100\nmetrics:\n  port: 0\n',
    // Tiny batches: a replay long enough for several progress reports.
    'slow.yaml': 'projections:\n  batchSize: 10\nmetrics:\n  port: 0\n',
    'projections/ledger.ts': await ledgerProjectionSource(),
    'projections/tally.ts': TALLY,
  });
  await appendLedgerEvents(db.pool, { count: EVENTS, streams: 50 });

  // The read models as a live daemon builds them.
  const daemon = startDaemon(['run'], { cwd: project.dir, env: { DATABASE_URL: db.url } });
  await waitFor(async () => (await countApplied(db.pool)) === EVENTS && (await tallyTotal()) === EVENTS, {
    timeoutMs: 30_000,
    message: 'the daemon built both read models',
  });
  expect(await daemon.stop()).toBe(0);
});

afterAll(async () => {
  await project?.cleanup();
});

const env = () => ({ DATABASE_URL: db.url });

/** Everything in the ledger's tables except `applied_seq`, which a rebuild renumbers. */
async function ledgerChecksum(): Promise<string> {
  const { rows } = await db.pool.query<{ balances: string; applied: string }>(`
    select (select md5(string_agg(account_id || ':' || balance, ',' order by account_id)) from ledger_balances) as balances,
           (select md5(string_agg(concat_ws(':', position, stream_id, stream_version, times), ',' order by position))
              from ledger_applied) as applied`);
  return `${rows[0]!.balances}/${rows[0]!.applied}`;
}

async function appliedSeqRange(): Promise<{ min: number; max: number }> {
  const { rows } = await db.pool.query<{ min: string; max: string }>('select min(applied_seq), max(applied_seq) from ledger_applied');
  return { min: Number(rows[0]!.min), max: Number(rows[0]!.max) };
}

async function tallyTotal(): Promise<number> {
  try {
    const { rows } = await db.pool.query<{ n: string | null }>('select sum(n) as n from tally');
    return Number(rows[0]!.n ?? 0);
  } catch (error) {
    if ((error as { code?: string }).code === '42P01') return 0; // not set up yet
    throw error;
  }
}

function jsonLines(stdout: string): LogLine[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);
}

describe('projd replay', () => {
  it('clears the ledger and rebuilds it to exactly the same tables', async () => {
    const before = await ledgerChecksum();
    const { max: lastSeqBefore } = await appliedSeqRange();

    const result = await runCli(['replay', 'ledger'], { cwd: project.dir, env: env() });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^replayed ledger: 3,000 events in \d+(\.\d)?s \([\d,]+ events\/s\)$/m);
    const logs = jsonLines(result.stdout);
    expect(logs.find((line) => line.msg === 'replay.started')).toMatchObject({ projection: 'ledger', version: 1, fromVersion: 1 });
    expect(logs.find((line) => line.msg === 'replay.done')).toMatchObject({ projection: 'ledger', events: EVENTS });
    // The replay tells its own story: its runner's setup and state changes (ending `live → stopped`) are not shown.
    const told = logs.map((line) => line.msg).filter((msg) => msg !== 'replay.progress');
    expect(told).toEqual(['replay.started', 'replay.done']);
    expect(result.stdout.trimEnd().split('\n').at(-1)).toMatch(/^replayed ledger: /);

    expect(await ledgerChecksum()).toBe(before);
    // Every row is new: the tables were cleared and filled again, not left as they were.
    expect((await appliedSeqRange()).min).toBeGreaterThan(lastSeqBefore);
    await expectLedgerExact(db.pool);
    const { rows } = await db.pool.query("select version, position from projd.checkpoints where projection = 'ledger'");
    expect(rows[0]).toMatchObject({ version: 1 });
  });

  it('with --all, replays every projection, one after the other', async () => {
    const before = await ledgerChecksum();
    const result = await runCli(['replay', '--all'], { cwd: project.dir, env: env() });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const finals = result.stdout.split('\n').filter((line) => line.startsWith('replayed '));
    expect(finals).toEqual([
      expect.stringMatching(/^replayed ledger: 3,000 events in /),
      expect.stringMatching(/^replayed tally: 3,000 events in /),
    ]);
    expect(await ledgerChecksum()).toBe(before);
    expect(await tallyTotal()).toBe(EVENTS);
  });

  it('reports progress as replay.progress log lines when stdout is not a terminal', async () => {
    const result = await runCli(['replay', 'ledger', '-c', 'slow.yaml', '--progress-interval', '20ms'], {
      cwd: project.dir,
      env: env(),
      timeoutMs: 60_000,
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);

    const progress = jsonLines(result.stdout).filter((line) => line.msg === 'replay.progress');
    expect(progress.length).toBeGreaterThanOrEqual(2);
    expect(progress[0]).toMatchObject({ projection: 'ledger', done: 0, total: EVENTS });
    let previous = 0;
    for (const line of progress) {
      expect(line).toMatchObject({ projection: 'ledger', total: EVENTS, rate: expect.any(Number) });
      const done = line.done as number;
      expect(done).toBeGreaterThanOrEqual(previous);
      expect(done).toBeLessThanOrEqual(EVENTS);
      previous = done;
    }
    // At least one report from the middle of the rebuild.
    expect(progress.some((line) => (line.done as number) > 0 && (line.done as number) < EVENTS)).toBe(true);
    expect(jsonLines(result.stdout).find((line) => line.msg === 'replay.done')).toMatchObject({ events: EVENTS });
    expect(result.stdout).toMatch(/^replayed ledger: 3,000 events in /m);
    await expectLedgerExact(db.pool);
  });

  it('refuses an unknown projection in one line naming it and the known ones, exit 2', async () => {
    const result = await runCli(['replay', 'ledgr'], { cwd: project.dir, env: env() });
    expect(cliTranscript(['replay', 'ledgr'], result)).toBe(
      "$ projd replay ledgr\nprojd: unknown projection 'ledgr'; known: ledger, tally\nExit code: 2",
    );
    expect(result.stdout).toBe('');
  });

  it('needs exactly one of a name and --all, exit 2', async () => {
    const both = await runCli(['replay', 'ledger', '--all'], { cwd: project.dir, env: env() });
    expect(cliTranscript(['replay', 'ledger', '--all'], both)).toBe(
      '$ projd replay ledger --all\nprojd: replay takes a projection name or --all, not both\nExit code: 2',
    );
    const neither = await runCli(['replay'], { cwd: project.dir, env: env() });
    expect(cliTranscript(['replay'], neither)).toBe(
      '$ projd replay\nprojd: replay needs a projection name, or --all for every projection\nExit code: 2',
    );
    // Nothing was touched.
    expect(await countApplied(db.pool)).toBe(await countEvents(db.pool));
  });
});
