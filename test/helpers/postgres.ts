// vitest globalSetup: one PostgreSQL per test run (embedded in a fresh temp dir, or the server
// at DATABASE_URL), and a migrated template database that each test file clones.

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { START_FAILED, startEmbeddedPostgres, type EmbeddedPostgres } from '../../scripts/embeddedPostgres.js';
import { migrate } from '../../src/store/migrate.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A superuser URL of the test server, connected to its maintenance database. */
    postgresAdminUrl: string;
    /** The migrated database that `createTestDatabase()` clones. */
    postgresTemplateDatabase: string;
  }
}

export const TEMPLATE_DATABASE = 'projd_template';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let server: EmbeddedPostgres | undefined;
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    // mkdtemp's own dir (not a subdir) as data dir: as root, the server's OS user must reach it.
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'projd-test-pg-'));
    try {
      server = await startEmbeddedPostgres({ dataDir, persistent: false });
    } catch (error) {
      await rm(dataDir, { recursive: true, force: true });
      throw oneLine(error);
    }
    adminUrl = server.url;
  }

  try {
    await createTemplate(adminUrl, TEMPLATE_DATABASE);
  } catch (error) {
    await server?.stop();
    throw error;
  }
  project.provide('postgresAdminUrl', adminUrl);
  project.provide('postgresTemplateDatabase', TEMPLATE_DATABASE);

  return async () => {
    // The embedded cluster goes as a whole; on a shared server, leave no template behind.
    if (server) await server.stop();
    else await dropTemplate(adminUrl, TEMPLATE_DATABASE);
  };
}

/** A start failure's message names its cause and fix: vitest shows it alone, with no stack. */
function oneLine(error: unknown): unknown {
  if ((error as { code?: unknown }).code !== START_FAILED) return error;
  const shown = new Error((error as Error).message);
  shown.stack = shown.message;
  return shown;
}

/** Replaces `url`'s database name. */
export function databaseUrl(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${encodeURIComponent(database)}`;
  return parsed.toString();
}

async function createTemplate(adminUrl: string, name: string): Promise<void> {
  await dropTemplate(adminUrl, name);
  await withClient(adminUrl, (client) => client.query(`create database ${pg.escapeIdentifier(name)}`));
  const pool = new pg.Pool({ connectionString: databaseUrl(adminUrl, name), max: 2 });
  try {
    await migrate(pool);
  } finally {
    // CREATE DATABASE … TEMPLATE fails while anyone is connected to the template.
    await pool.end();
  }
  // allow_connections false keeps it that way: nothing can connect to the template by mistake.
  await withClient(adminUrl, (client) =>
    client.query(`alter database ${pg.escapeIdentifier(name)} with is_template true allow_connections false`),
  );
}

async function dropTemplate(adminUrl: string, name: string): Promise<void> {
  await withClient(adminUrl, async (client) => {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (rowCount === 0) return;
    // A template database cannot be dropped until it is an ordinary one again.
    await client.query(`alter database ${pg.escapeIdentifier(name)} with is_template false`);
    await client.query(`drop database ${pg.escapeIdentifier(name)} with (force)`);
  });
}

async function withClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}
