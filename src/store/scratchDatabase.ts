import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * Throwaway databases for projection tests (`projd/testing`): each test gets a database of its
 * own on one server, so tests never see each other's events or read models.
 */

/** `url` with its database name replaced. */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${encodeURIComponent(database)}`;
  return parsed.toString();
}

/**
 * Creates a database with a fresh name, connected to through `adminUrl` (a role that may create
 * databases), and returns its name: `projd_test_<pid>_<random>`.
 */
export async function createScratchDatabase(adminUrl: string): Promise<string> {
  const name = `projd_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  await withClient(adminUrl, (client) => client.query(`create database ${pg.escapeIdentifier(name)}`));
  return name;
}

/** Drops it, closing whatever connections are left (PostgreSQL 13+). */
export async function dropScratchDatabase(adminUrl: string, name: string): Promise<void> {
  await withClient(adminUrl, (client) => client.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`));
}

async function withClient(url: string, work: (client: pg.Client) => Promise<unknown>): Promise<void> {
  const client = new pg.Client({ connectionString: url, application_name: 'projd testing' });
  await client.connect();
  try {
    await work(client);
  } finally {
    await client.end();
  }
}
