import os from 'node:os';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { readMigrations } from '../../src/store/migrate.js';
import { SCHEMA, advisoryLockKey } from '../../src/store/names.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { writeProject } from '../helpers/project.js';
import { dumpSchema } from '../helpers/schemaDump.js';
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

describe('projd migrate', () => {
  it('creates the tables of an empty database, printing each migration it applied', async () => {
    const result = await migrate(empty.url);

    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(migrationIds.map((id) => `applied ${id}\n`).join(''));
    expect(await recordedMigrations(empty.pool)).toEqual(migrationIds);
    const schema = await dumpSchema(empty.pool);
    expect(schema).toContain('create table projd.events (');
    expect(schema).toContain('create table projd.migrations (');
    expect(schema).toBe(await dumpSchema(reference.pool));
  });

  it('run again, prints that the database is up to date and changes nothing', async () => {
    const before = await dumpSchema(empty.pool);

    const result = await migrate(empty.url);

    expect(result).toMatchObject({ code: 0, stdout: 'projd: database is up to date\n', stderr: '' });
    expect(await recordedMigrations(empty.pool)).toEqual(migrationIds);
    expect(await dumpSchema(empty.pool)).toEqual(before);
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
    expect(await dumpSchema(raced.pool)).toEqual(await dumpSchema(reference.pool));
  });
});

describe('a database migrated by a newer projd', () => {
  const NEWER = '9999_from_a_newer_projd';
  const PROJECTION = `import { defineProjection } from 'projd';
export default defineProjection({ name: 'ok', version: 1, handlers: { 'account.credited': async () => {} } });
`;

  it('is refused by every command that connects: one line naming both migrations, exit 2, nothing changed', async () => {
    const newer = await createTestDatabase();
    await newer.pool.query('insert into projd.migrations (id) values ($1)', [NEWER]);
    const before = await dumpSchema(newer.pool);
    const project = await writeProject({ 'projd.yaml': 'metrics:\n  port: 0\n', 'projections/ok.ts': PROJECTION });
    try {
      // The three ways in: the daemon's start, a command that migrates first (as replay and
      // failed do), and one that does not.
      for (const args of [['run'], ['migrate'], ['status']]) {
        const result = await runCli(args, { cwd: project.dir, env: { DATABASE_URL: newer.url } });
        expect(result.stderr, `projd ${args.join(' ')}`).toBe(
          `projd: projd.migrations records migration ${NEWER}, which this projd does not ship ` +
            `(it knows migrations up to ${migrationIds.at(-1)}): the database was migrated by a newer projd; upgrade projd to use it\n`,
        );
        expect(result.code, `projd ${args.join(' ')}`).toBe(2);
      }
    } finally {
      await project.cleanup();
    }
    expect(await dumpSchema(newer.pool)).toBe(before);
  });
});
