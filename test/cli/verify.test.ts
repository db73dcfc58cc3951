import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accountsProjectionSource, appendAccountEvents } from '../helpers/accounts.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { writeProject, type Project } from '../helpers/project.js';
import { cliTranscript } from '../helpers/transcript.js';

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
  });
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
  it.each(['per_event', 'sql_batch', 'split', 'credits'])('exits 0 for %s, leaving no scratch schema and the checkpoint as it was', async (name) => {
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

  it('refuses an unknown projection', async () => {
    const result = await verifyCli(['verify', 'nope']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^projd: unknown projection 'nope'; known: [^\n]+\n$/);
  });
});
