import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accountsProjectionSource, appendAccountEvents } from '../helpers/accounts.js';
import { isLiveLine, runCli, startDaemon, type CliResult } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { writeProject, type Project } from '../helpers/project.js';
import { cliTranscript } from '../helpers/transcript.js';
import { waitFor } from '../helpers/waitFor.js';

// `projd verify` rebuilds a projection in a scratch schema, up to the live checkpoint, and
// compares table by table. The live projections here are built by `projd replay`, then more
// events are appended that no daemon applies: the rebuild must stop at the checkpoint.

const db = await createTestDatabase();
const BATCH = 7; // small batches, so that every build runs many of them, in every form

const CREDITS_YAML = `name: credits
version: 1
batchSize: ${BATCH}
setup: create table if not exists credits (account_id text primary key, count integer not null default 0, total bigint not null default 0)
reset: truncate credits
handlers:
  account.credited: |
    insert into credits (account_id, count, total) values (:streamId, 1, (:data->>'amount')::bigint)
    on conflict (account_id) do update set count = credits.count + 1, total = credits.total + excluded.total
`;

const QUALIFIED_YAML = `name: qualified
version: 1
setup: create table if not exists public.qualified_totals (account_id text primary key, total bigint not null)
reset: truncate public.qualified_totals
handlers:
  account.credited: insert into public.qualified_totals values (:streamId, 1) on conflict (account_id) do nothing
`;

/** Reads a table it does not create, made by hand beside it: there is none in a scratch schema. */
const LOOKUP_YAML = `name: lookup
version: 1
setup: create table if not exists lookup_totals (account_id text primary key, total bigint not null default 0)
reset: truncate lookup_totals
handlers:
  account.credited: |
    insert into lookup_totals (account_id, total) select :streamId, r.rate from lookup_rates r
    on conflict (account_id) do update set total = lookup_totals.total + excluded.total
`;

/** Names a schema in a module handler's SQL, which only shows when the statement is sent. */
const RUNTIME_QUALIFIED = `import { defineProjection } from 'projd';
export default defineProjection({
  name: 'runtime_qualified',
  version: 1,
  handlers: {
    'account.credited': async (event, db) => {
      await db.query('insert into public.runtime_totals (account_id) values ($1) on conflict do nothing', [event.streamId]);
    },
  },
});
`;

/** Slow in a scratch schema only (its first schema on the search path), so that a verify can be interrupted mid-build. */
const SLOW_YAML = `name: slow
version: 1
batchSize: ${BATCH}
setup: create table if not exists slow_seen (position bigint primary key)
reset: truncate slow_seen
handlers:
  account.credited: |
    insert into slow_seen (position) select :position where pg_sleep(case when current_schema() like 'projd_scratch_%' then 0.05 else 0 end) is not null
`;

/** Creates its table in a handler, not in `setup`: verify reads it live only after the build. */
const LATE_TABLE = `import { defineProjection } from 'projd';
export default defineProjection({
  name: 'late_table',
  version: 1,
  handlers: {
    'account.debited': async (event, db) => {
      await db.query('create table if not exists late_seen (position bigint primary key)');
      await db.query('insert into late_seen (position) values ($1)', [event.position]);
    },
  },
});
`;

const splitSource = accountsProjectionSource({ name: 'split', form: 'moduleBatch', batchSize: BATCH }).replace(
  'version: 1,',
  'version: 1,\n  partitions: 3,',
);

let project: Project;

beforeAll(async () => {
  project = await writeProject({
    'projd.yaml': 'metrics:\n  port: 0\n',
    'projections/per_event.ts': accountsProjectionSource({ name: 'per_event', form: 'perEvent', batchSize: BATCH }),
    'projections/sql_batch.ts': accountsProjectionSource({ name: 'sql_batch', form: 'sqlBatch', batchSize: BATCH }),
    'projections/split.ts': splitSource,
    'projections/credits.yaml': CREDITS_YAML,
    'projections/qualified.yaml': QUALIFIED_YAML,
    'projections/lookup.yaml': LOOKUP_YAML,
    'projections/runtime_qualified.ts': RUNTIME_QUALIFIED,
    'projections/slow.yaml': SLOW_YAML,
    'projections/late_table.ts': LATE_TABLE,
  });
  await db.pool.query('create table lookup_rates (rate bigint not null); insert into lookup_rates values (3)');
  await db.pool.query('create table runtime_totals (account_id text primary key)');
  expect(splitSource).toContain('partitions: 3');
  await appendAccountEvents(db.pool, { count: 120, streams: 9 });
  const replayed = await verifyCli(['replay', '--all']);
  expect(replayed.code, replayed.stderr).toBe(0);
  // Past every checkpoint: a rebuild that read them would differ from the live tables.
  await appendAccountEvents(db.pool, { count: 40, streams: 9 });
});

afterAll(() => project?.cleanup());

function verifyCli(args: string[]): Promise<CliResult> {
  return runCli(args, { cwd: project.dir, env: { DATABASE_URL: db.url } });
}

async function scratchSchemas(): Promise<string[]> {
  const { rows } = await db.pool.query<{ nspname: string }>("select nspname from pg_namespace where nspname like 'projd_scratch_%'");
  return rows.map((row) => row.nspname);
}

async function checkpoints(): Promise<unknown[]> {
  const { rows } = await db.pool.query('select * from projd.checkpoints order by projection, part');
  return rows;
}

describe('projd verify, on an intact projection', () => {
  it.each(['per_event', 'sql_batch', 'split', 'credits', 'late_table'])('exits 0 for %s, leaving no scratch schema and the checkpoint as it was', async (name) => {
    const before = await checkpoints();
    const result = await verifyCli(['verify', name]);
    expect(result.code, `stderr:\n${result.stderr}\nstdout:\n${result.stdout}`).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^verified ${name}: \\d+ tables? equal to a rebuild of \\d+ events up to `));
    expect(await scratchSchemas()).toEqual([]);
    expect(await checkpoints()).toEqual(before);
  });

  it('prints the tables compared with --json', async () => {
    const result = await verifyCli(['verify', 'split', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const parsed = JSON.parse(result.stdout) as { equal: boolean; checkpoints: string[]; tables: { table: string; verdict: string; liveTable: string }[] };
    expect(parsed.equal).toBe(true);
    expect(parsed.checkpoints).toHaveLength(3);
    expect(parsed.tables.map(({ table, verdict, liveTable }) => ({ table, verdict, liveTable }))).toEqual([
      { table: 'split', verdict: 'equal', liveTable: 'public.split' },
      { table: 'split_applied', verdict: 'equal', liveTable: 'public.split_applied' },
    ]);
  });
});

describe('projd verify, after a row was changed by hand', () => {
  it('exits 1 naming the table that differs, and only that one', async () => {
    const { rows } = await db.pool.query<{ account_id: string }>('select account_id from sql_batch order by account_id limit 1');
    const account = rows[0]!.account_id;
    await db.pool.query('update sql_batch set balance = balance + 1 where account_id = $1', [account]);
    try {
      const result = await verifyCli(['verify', 'sql_batch']);
      expect(result.code, `stderr:\n${result.stderr}\nstdout:\n${result.stdout}`).toBe(1);
      const lines = result.stdout.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^sql_batch: 1 of 2 tables differs from a rebuild of \d+ events up to /);
      expect(lines.slice(1)).toHaveLength(1);
      expect(lines[1]).toMatch(/^ {2}sql_batch: live public\.sql_batch 9 rows \(checksum [0-9a-f]{16}\), rebuilt 9 rows \(checksum [0-9a-f]{16}\)$/);
      expect(await scratchSchemas()).toEqual([]);
    } finally {
      await db.pool.query('update sql_batch set balance = balance - 1 where account_id = $1', [account]);
    }
  });
});

describe('projd verify, when a live table is gone', () => {
  it('exits 1 saying there is no live table of that name', async () => {
    await db.pool.query('alter table credits rename to credits_aside');
    try {
      const result = await verifyCli(['verify', 'credits']);
      expect(result.code, `stderr:\n${result.stderr}\nstdout:\n${result.stdout}`).toBe(1);
      expect(result.stdout).toMatch(/\n {2}credits: no live table of that name; rebuilt 9 rows \(checksum [0-9a-f]{16}\)\n$/);
      expect(await scratchSchemas()).toEqual([]);
    } finally {
      await db.pool.query('alter table credits_aside rename to credits');
    }
  });
});

describe('projd verify, bad input', () => {
  it('refuses a projection whose SQL names a schema, in one line, building nothing', async () => {
    const result = await verifyCli(['verify', 'qualified']);
    expect(cliTranscript(['verify', 'qualified'], result, [[project.dir, '<project>']])).toBe(
      [
        '$ projd verify qualified',
        "projd: projection 'qualified' (<project>/projections/qualified.yaml): setup names schema 'public' (public.qualified_totals); " +
          'a scratch build needs unqualified table names, so that they resolve to its own schema',
        'Exit code: 2',
      ].join('\n'),
    );
    expect(result.stdout).toBe('');
    expect(await scratchSchemas()).toEqual([]);
  });

  it("refuses a module whose handler's statement names a schema, before the statement is sent", async () => {
    const { rows: before } = await db.pool.query('select * from runtime_totals order by account_id');
    const result = await verifyCli(['verify', 'runtime_qualified']);
    expect(result.code, `stderr:\n${result.stderr}\nstdout:\n${result.stdout}`).toBe(2);
    expect(result.stderr).toMatch(
      /^projd: projection 'runtime_qualified' \([^)]+\): a handler names schema 'public' \(public\.runtime_totals\); [^\n]+\n$/,
    );
    expect(before.length).toBeGreaterThan(0);
    expect((await db.pool.query('select * from runtime_totals order by account_id')).rows).toEqual(before);
    expect(await scratchSchemas()).toEqual([]);
  });

  it('refuses an unknown projection', async () => {
    const result = await verifyCli(['verify', 'nope']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^projd: unknown projection 'nope'; known: [^\n]+\n$/);
  });
});

describe('projd verify, when the build cannot finish', () => {
  it('exits 1 naming the event when a handler fails in the scratch schema, and drops it', async () => {
    const result = await verifyCli(['verify', 'lookup']);
    expect(result.code, `stderr:\n${result.stderr}\nstdout:\n${result.stdout}`).toBe(1);
    expect(result.stderr).toMatch(
      /^projd: projection 'lookup': the scratch build failed at event \d+ \(account\.credited\): relation "lookup_rates" does not exist\n$/,
    );
    expect(result.stdout).toBe('');
    expect(await scratchSchemas()).toEqual([]);
  });

  it('stops on SIGINT mid-build, drops the scratch schema and exits 1', async () => {
    const verify = startDaemon(['verify', 'slow', '--progress-interval', '1ms'], { cwd: project.dir, env: { DATABASE_URL: db.url } });
    await waitFor(() => verify.stderr().includes('verify slow: rebuilt'), { timeoutMs: 30_000, message: 'a progress line' });
    expect(await scratchSchemas()).toHaveLength(1);
    expect(await verify.stop('SIGINT')).toBe(1);
    expect(verify.stderr()).toMatch(/projd: verify slow: interrupted; the scratch schema was dropped\n$/);
    expect(await scratchSchemas()).toEqual([]);
  });
});

describe('projd verify, beside a running daemon', () => {
  it('compares with the live tables as of the checkpoint it read, while the daemon applies new events', async () => {
    const daemon = startDaemon(['run'], { cwd: project.dir, env: { DATABASE_URL: db.url } });
    try {
      await daemon.waitForLog((line) => isLiveLine(line) && line.projection === 'sql_batch', 30_000);
      let verifying = true;
      const verified = verifyCli(['verify', 'sql_batch']).finally(() => (verifying = false));
      let appended = 0;
      while (verifying) {
        await appendAccountEvents(db.pool, { count: 5, streams: 9 });
        appended += 5;
        await waitFor(async () => (await headApplied('sql_batch')) || !verifying, { message: 'sql_batch to catch up' });
      }
      const result = await verified;
      expect(result.code, `stderr:\n${result.stderr}\nstdout:\n${result.stdout}`).toBe(0);
      expect(appended).toBeGreaterThan(0);
      expect(await scratchSchemas()).toEqual([]);
      await waitFor(() => headApplied('sql_batch'), { message: 'sql_batch to apply every event after the verify' });
    } finally {
      expect(await daemon.stop('SIGTERM')).toBe(0);
    }
  });
});

/** The projection's checkpoint is at the store's last event. */
async function headApplied(name: string): Promise<boolean> {
  const { rows } = await db.pool.query<{ caught_up: boolean }>(
    `select c.position = (select max(position) from projd.events) as caught_up from projd.checkpoints c where c.projection = $1`,
    [name],
  );
  return rows[0]?.caught_up === true;
}
