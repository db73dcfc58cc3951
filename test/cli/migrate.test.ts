import os from 'node:os';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { readMigrations } from '../../src/store/migrate.js';
import { SCHEMA, advisoryLockKey } from '../../src/store/names.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { waitFor } from '../helpers/waitFor.js';

// `projd migrate` against databases as a user has them: new and empty, no `projd` schema.
const empty = await createTestDatabase({ empty: true });
const raced = await createTestDatabase({ empty: true });
// Migrated in-process by globalSetup: the schema every migrated database must have.
const reference = await createTestDatabase();
const migrationIds = (await readMigrations()).map((migration) => migration.id);

function migrate(url: string): Promise<CliResult> {
  return runCli(['migrate'], { cwd: os.tmpdir(), env: { DATABASE_URL: url } });
}

async function recordedMigrations(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ id: string }>('select id from projd.migrations order by id');
  return rows.map((row) => row.id);
}

/** Every object of schema `projd`, one line each, sorted: tables, columns, indexes, constraints, functions, triggers. */
async function describeSchema(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ line: string }>(`
    select format('column %s.%s %s %s default %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                  case when a.attnotnull then 'not null' else 'null' end,
                  coalesce(pg_get_expr(d.adbin, d.adrelid), '-')) as line
      from pg_attribute a
      join pg_class c on c.oid = a.attrelid
      left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
     where c.relnamespace = 'projd'::regnamespace and c.relkind in ('r', 'v', 'm', 'p') and a.attnum > 0 and not a.attisdropped
    union all
    select format('relation %s %s', relname, relkind) from pg_class where relnamespace = 'projd'::regnamespace
    union all
    select 'index ' || indexdef from pg_indexes where schemaname = 'projd'
    union all
    select format('constraint %s %s', conname, pg_get_constraintdef(oid)) from pg_constraint
     where connamespace = 'projd'::regnamespace
    union all
    select 'function ' || pg_get_functiondef(oid) from pg_proc where pronamespace = 'projd'::regnamespace
    union all
    select 'trigger ' || pg_get_triggerdef(t.oid) from pg_trigger t join pg_class c on c.oid = t.tgrelid
     where c.relnamespace = 'projd'::regnamespace and not t.tgisinternal
    order by 1`);
  return rows.map((row) => row.line);
}

describe('projd migrate', () => {
  it('creates the tables of an empty database, printing each migration it applied', async () => {
    const result = await migrate(empty.url);

    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(migrationIds.map((id) => `applied ${id}\n`).join(''));
    expect(await recordedMigrations(empty.pool)).toEqual(migrationIds);
    const schema = await describeSchema(empty.pool);
    expect(schema).toEqual(expect.arrayContaining(['relation events r', 'relation migrations r']));
    expect(schema).toEqual(await describeSchema(reference.pool));
  });

  it('run again, prints that the database is up to date and changes nothing', async () => {
    const before = await describeSchema(empty.pool);

    const result = await migrate(empty.url);

    expect(result).toMatchObject({ code: 0, stdout: 'projd: database is up to date\n', stderr: '' });
    expect(await recordedMigrations(empty.pool)).toEqual(migrationIds);
    expect(await describeSchema(empty.pool)).toEqual(before);
  });

  it('two processes started at once on an empty database both succeed, applying each migration once', async () => {
    // The test holds the migration lock while both start, so both wait for it at the same time
    // and contend for every migration once it is released, however fast either one starts.
    const lockHolder = await raced.pool.connect();
    let results: CliResult[];
    try {
      await lockHolder.query('select pg_advisory_lock($1::bigint)', [advisoryLockKey('migrate', SCHEMA)]);
      const running = Promise.all([migrate(raced.url), migrate(raced.url)]);
      await waitFor(
        async () => {
          const { rows } = await raced.pool.query<{ waiting: number }>(
            `select count(*)::int as waiting from pg_locks
              where locktype = 'advisory' and not granted
                and database = (select oid from pg_database where datname = current_database())`,
          );
          return rows[0]!.waiting === 2;
        },
        { timeoutMs: 20_000, message: 'both migrate processes waiting for the migration lock' },
      );
      await lockHolder.query('select pg_advisory_unlock($1::bigint)', [advisoryLockKey('migrate', SCHEMA)]);
      results = await running;
    } finally {
      lockHolder.release();
    }

    for (const result of results) {
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
    }
    // Between them they applied every migration exactly once; one may have found nothing left to do.
    const applied = results.flatMap((result) =>
      result.stdout.split('\n').flatMap((line) => (line.startsWith('applied ') ? [line.slice('applied '.length)] : [])),
    );
    expect(applied.sort()).toEqual(migrationIds);
    for (const result of results) {
      expect(result.stdout).toMatch(/^(?:(?:applied \S+\n)+|projd: database is up to date\n)$/);
    }
    expect(await recordedMigrations(raced.pool)).toEqual(migrationIds);
    expect(await describeSchema(raced.pool)).toEqual(await describeSchema(reference.pool));
  });
});
