import { readFile, readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { UserError } from '../errors.js';
import { checkOut } from './connect.js';
import { MIGRATIONS_TABLE, SCHEMA, advisoryLockKey } from './names.js';

/** Shipped next to `src/` and `dist/`, so the same relative path works from both. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

export interface Migration {
  /** The file name without `.sql`, e.g. `0001_events`. */
  id: string;
  sql: string;
}

export async function readMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((file) => /^\d{4}_[a-z0-9_]+\.sql$/.test(file)).sort();
  return Promise.all(
    files.map(async (file) => ({ id: file.slice(0, -'.sql'.length), sql: await readFile(`${dir}${file}`, 'utf8') })),
  );
}

const selectAppliedSql = /* sql */ `select id from ${MIGRATIONS_TABLE}`;

const bootstrapSql = /* sql */ `
  create schema if not exists ${SCHEMA};
  create table if not exists ${MIGRATIONS_TABLE} (
    id text primary key,
    applied_at timestamptz not null default now()
  )`;

/**
 * Creates or upgrades projd's tables. Idempotent, and safe when several processes start at
 * once: each migration runs in its own transaction under one advisory lock, and checks again
 * under the lock whether another process applied it meanwhile.
 * Returns the ids it applied.
 */
export async function migrate(pool: pg.Pool): Promise<string[]> {
  const migrations = await readMigrations();
  const appliedIds = await selectApplied(pool);
  checkSchemaKnown(appliedIds, migrations);
  const applied = new Set(appliedIds);
  const pending = migrations.filter((migration) => !applied.has(migration.id));
  const done: string[] = [];
  for (const migration of pending) {
    const { client, release } = await checkOut(pool);
    try {
      await client.query('begin');
      await client.query('select pg_advisory_xact_lock($1::bigint)', [advisoryLockKey('migrate', SCHEMA)]);
      await client.query(bootstrapSql);
      const { rowCount } = await client.query(`select 1 from ${MIGRATIONS_TABLE} where id = $1`, [migration.id]);
      if (rowCount === 0) {
        await client.query(`insert into ${MIGRATIONS_TABLE} (id) values ($1)`, [migration.id]);
        await client.query(migration.sql);
        done.push(migration.id);
      }
      await client.query('commit');
    } catch (error) {
      await client.query('rollback').catch(() => undefined);
      const message = `migration ${migration.id} failed: ${(error as Error).message}`;
      // insufficient_privilege: the role may append and read, but not create projd's tables.
      if ((error as { code?: string }).code === '42501') {
        throw new UserError(`${message}; run \`projd migrate\` once as a role that may create schemas and tables`, {
          cause: error,
        });
      }
      throw new Error(message, { cause: error });
    } finally {
      release();
    }
  }
  return done;
}

/**
 * Refuses a database that a newer projd has migrated: this code does not know its tables, and
 * running on them could corrupt what the newer code relies on. For the commands that do not
 * migrate; `migrate()` makes the same check first.
 */
export async function assertSchemaKnown(pool: pg.Pool): Promise<void> {
  checkSchemaKnown(await selectApplied(pool), await readMigrations());
}

/** Throws a `UserError` naming the newest migration recorded that `shipped` does not hold. */
function checkSchemaKnown(applied: readonly string[], shipped: readonly Migration[]): void {
  const known = new Set(shipped.map((migration) => migration.id));
  const unknown = applied.filter((id) => !known.has(id)).sort();
  if (unknown.length === 0) return;
  const newestKnown = shipped.at(-1)?.id ?? 'none';
  throw new UserError(
    `${MIGRATIONS_TABLE} records migration ${unknown.at(-1)}, which this projd does not ship ` +
      `(it knows migrations up to ${newestKnown}): the database was migrated by a newer projd; upgrade projd to use it`,
  );
}

async function selectApplied(pool: pg.Pool): Promise<string[]> {
  try {
    const { rows } = await pool.query<{ id: string }>(selectAppliedSql);
    return rows.map((row) => row.id);
  } catch (error) {
    // undefined_table: projd's schema does not exist yet, so nothing is applied.
    if ((error as { code?: string }).code === '42P01') return [];
    throw error;
  }
}
