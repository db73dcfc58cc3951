import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, expect, inject } from 'vitest';
import { startEmbeddedPostgres } from '../../scripts/embeddedPostgres.js';
import { migrate } from '../../src/store/migrate.js';
import { databaseUrl } from './postgres.js';

export interface TestDatabase {
  /** URL of this file's own database. */
  url: string;
  /** A pool on it, ended by `drop()`. */
  pool: pg.Pool;
  name: string;
  /** Ends the pool and drops the database, closing any connection left. Idempotent. */
  drop(): Promise<void>;
}

export interface CreateTestDatabaseOptions {
  /**
   * Create it empty, as a user's new database is (PostgreSQL's default template, no `projd`
   * schema), instead of cloning the migrated template. @defaultValue false
   */
  empty?: boolean;
}

/**
 * A fresh, migrated database for one test file, cloned from the template that globalSetup
 * made. Call it at the top level of the file: `const db = await createTestDatabase();`.
 * It is dropped after the file if every test passed; otherwise it is kept and its name printed.
 */
export async function createTestDatabase(options: CreateTestDatabaseOptions = {}): Promise<TestDatabase> {
  const adminUrl = inject('postgresAdminUrl');
  const template = options.empty ? undefined : inject('postgresTemplateDatabase');
  const testFile = expect.getState().testPath ?? 'unknown';
  const name = uniqueName(testFile);

  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    const from = template === undefined ? '' : ` template ${pg.escapeIdentifier(template)}`;
    await admin.query(`create database ${pg.escapeIdentifier(name)}${from}`);
  } finally {
    await admin.end();
  }

  const url = databaseUrl(adminUrl, name);
  const pool = new pg.Pool({ connectionString: url, max: 5 });
  // An idle client whose connection the server closed (a test killing backends) must not crash the worker.
  pool.on('error', () => {});

  let dropping: Promise<void> | undefined;
  const drop = (): Promise<void> => {
    dropping ??= (async () => {
      await pool.end();
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      try {
        await client.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
      } finally {
        await client.end();
      }
    })();
    return dropping;
  };

  // Same policy as pg-boss's test hooks: a failed file leaves its data behind for inspection.
  // vitest reads the first parameter as fixtures and insists it is destructured; the file is the second.
  afterAll(async ({}, file) => {
    if (!hasFailure(file)) {
      await drop();
      return;
    }
    await pool.end().catch(() => undefined);
    const note = process.env.DATABASE_URL ? '' : ' (the embedded server is removed after the run; set DATABASE_URL to keep it)';
    console.warn(`kept database ${name} of failed ${path.basename(testFile)}: ${url}${note}`);
  });

  return { url, pool, name, drop };
}

export interface IsolatedPostgres {
  /** URL of the migrated `postgres` database of a server of its own. */
  url: string;
  port: number;
  /** A pool on it, ended by `stop()`. */
  pool: pg.Pool;
  /** Stops the server and deletes its data. Idempotent. */
  stop(): Promise<void>;
}

/**
 * A separate embedded server, for a test that holds a transaction open: the xmin horizon is
 * cluster-wide, so on the shared server it would hold back every other file's projections.
 */
export async function startIsolatedPostgres(): Promise<IsolatedPostgres> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'projd-test-isolated-'));
  let server;
  try {
    server = await startEmbeddedPostgres({ dataDir, persistent: false });
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  const pool = new pg.Pool({ connectionString: server.url, max: 5 });
  pool.on('error', () => {});

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await pool.end().catch(() => undefined);
      await server.stop();
    })();
    return stopping;
  };

  try {
    await migrate(pool);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: server.url, port: server.port, pool, stop };
}

function uniqueName(testFile: string): string {
  const slug = path
    .basename(testFile)
    .replace(/\.test\.[cm]?[jt]s$/, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .slice(0, 30);
  return `projd_test_${slug}_${randomBytes(4).toString('hex')}`;
}

interface TaskLike {
  result?: { state?: string };
  tasks?: readonly TaskLike[];
}

function hasFailure(task: TaskLike): boolean {
  return task.result?.state === 'fail' || (task.tasks ?? []).some(hasFailure);
}
