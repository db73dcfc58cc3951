// The benchmark's database: a database of its own on an embedded PostgreSQL in a fresh temporary
// folder, or on the server at DATABASE_URL. Either way it is gone when the run ends.

import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../scripts/embeddedPostgres.js';
import { onCleanup } from './cleanup.js';

/**
 * @param {{ databaseUrl?: string, progress: (line: string) => void }} options
 * @returns {Promise<{ url: string, embedded: boolean, serverVersion: string, commitTimestamps: boolean }>}
 */
export async function openDatabase({ databaseUrl, progress }) {
  const server = databaseUrl ? { url: databaseUrl, embedded: false } : await startServer(progress);
  const name = server.embedded ? 'projd_bench' : `projd_bench_${process.pid}_${randomBytes(3).toString('hex')}`;
  await withClient(server.url, (client) => client.query(`create database ${pg.escapeIdentifier(name)}`));
  // force: a connection left behind by an interrupted run must not keep the database alive.
  onCleanup(() => withClient(server.url, (client) => client.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`)));

  const url = withDatabase(server.url, name);
  const { serverVersion, commitTimestamps } = await withClient(url, async (client) => {
    const { rows } = await client.query(
      "select current_setting('server_version') as version, current_setting('track_commit_timestamp')::boolean as commit_ts",
    );
    return { serverVersion: rows[0].version, commitTimestamps: rows[0].commit_ts };
  });
  return { url, embedded: server.embedded, serverVersion, commitTimestamps };
}

/** A connected client that cannot crash the process when the server goes away under it. */
export async function connect(url) {
  const client = new pg.Client({ connectionString: url, application_name: 'projd bench' });
  client.on('error', () => {});
  await client.connect();
  return client;
}

export async function withClient(url, work) {
  const client = await connect(url);
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * PostgreSQL's own defaults (fsync and synchronous_commit on), not the test suite's speed flags:
 * a per-event commit must cost what it costs in production. track_commit_timestamp is turned on
 * (it needs a restart) so that live latency is measured from commit to commit on one clock.
 */
async function startServer(progress) {
  // mkdtemp's own folder as the data dir: as root, the server's OS user must be able to reach it.
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'projd-bench-pg-'));
  let removed = false;
  const removeSync = () => {
    if (!removed) rmSync(dataDir, { recursive: true, force: true });
  };
  // Last resort for an exit that skipped cleanUp(); the helper's own exit hook stops the server.
  process.on('exit', removeSync);
  onCleanup(async () => {
    process.off('exit', removeSync);
    await rm(dataDir, { recursive: true, force: true });
    removed = true;
  });

  progress('starting an embedded PostgreSQL');
  // Detached: a terminal's Ctrl-C reaches only us, and we stop the server after our clients.
  const options = { dataDir, persistent: true, detached: true };
  const first = await startEmbeddedPostgres(options);
  const stopFirst = onCleanup(() => first.stop());
  await withClient(first.url, (client) => client.query('alter system set track_commit_timestamp = on'));
  await stopFirst();
  const server = await startEmbeddedPostgres({ ...options, port: first.port });
  onCleanup(() => server.stop());
  return { url: server.url, embedded: true };
}

function withDatabase(url, database) {
  const parsed = new URL(url);
  parsed.pathname = `/${encodeURIComponent(database)}`;
  return parsed.toString();
}
