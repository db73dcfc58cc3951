import type pg from 'pg';
import { errorMessage, isUserError, OperationalError, UserError } from '../errors.js';
import { schemaQualifiedNames } from '../projection/sqlLexer.js';
import type { Projection } from '../projection/types.js';
import { partLabel, partsOfProjection, type Part } from '../store/part.js';
import { comparePositions, START, type Position } from '../store/position.js';
import { createScratchSchema, dropScratchSchema, searchPathSql } from '../store/scratchSchema.js';
import { MARK_BATCH_SQL } from '../store/snapshotGate.js';
import { applyBatch, pickForm } from './apply/pickForm.js';
import { BatchFailure, EventFailure, handlerCause } from './batchErrors.js';
import { inCancellableTransaction } from './cancellableTransaction.js';
import type { Deadline } from './deadline.js';
import { createHandlerDb } from './handlerDb.js';

/**
 * Schemas a projection may name in its SQL and still be built in scratch: projd's own (its
 * `projd.batch_events()`, `projd.stream_part()`) and the system catalog. They hold no read model.
 */
const SCHEMAS_ALLOWED = new Set(['projd', 'pg_catalog']);

/** Distinct handler statements remembered as checked; SQL built with literals would otherwise grow the set per event. */
const MAX_CHECKED_STATEMENTS = 1_000;

export interface ScratchBuildOptions {
  pool: pg.Pool;
  projection: Projection;
  /** The schema to build in; created by `setUp`, which fails if it exists. */
  schema: string;
  batchSize: number;
  /** Past this many milliseconds a batch is cancelled and the build fails. */
  timeoutMs: number;
  /** Aborting stops the build at its next statement: the batch in flight is cancelled and rolled back. */
  signal?: AbortSignal;
  /** Told after each committed batch: the events applied so far, every part together. */
  onBatch?: (applied: number) => void;
}

/**
 * A projection built from the store into a schema of its own (`schema`), beside its live
 * tables and without touching them, its checkpoint or its lock: each batch runs with
 * `search_path` set to that schema alone (transaction-local), in the form the runner would
 * pick (SQL batch, `handleBatch`, per event), part by part for a split projection. The
 * checkpoint is this object's own, in memory, so a build goes on from where it stopped.
 * Batches commit one by one, each marked as the runner's are (`BATCH_MARK`).
 */
export interface ScratchBuild {
  readonly schema: string;
  /** Creates the schema and runs the projection's `setup` in it. */
  setUp(): Promise<void>;
  /**
   * Applies the events not applied yet up to `bounds[i]` (inclusive) for part `i` (one bound
   * when the projection is not split), and returns how many events that was.
   * @throws UserError when a handler's statement names a schema.
   * @throws OperationalError when a handler fails, naming the event or the batch.
   */
  buildTo(bounds: readonly Position[]): Promise<number>;
  /** Drops the schema and everything built in it. Idempotent. */
  drop(): Promise<void>;
}

export function createScratchBuild(options: ScratchBuildOptions): ScratchBuild {
  const { pool, projection, schema, batchSize, timeoutMs, signal } = options;
  const parts = partsOfProjection(projection);
  const reached: Position[] = parts.map(() => START);
  let applied = 0;
  const assertStatement = createStatementCheck(projection);

  /** One transaction on the scratch schema; a failure rolls it back and discards the connection. */
  async function inScratch<T>(work: (client: pg.PoolClient, deadline: Deadline) => Promise<T>): Promise<T> {
    throwIfAborted(signal);
    // Marked as the runner's batches are: no reader's gate waits for a scratch batch either.
    const settings = [searchPathSql(schema), 'set local synchronous_commit = off', MARK_BATCH_SQL];
    return inCancellableTransaction(pool, { timeoutMs, settings, signal }, async (client, deadline) => {
      const result = await work(client, deadline);
      throwIfAborted(signal);
      return { result, commit: true };
    });
  }

  async function buildPart(part: Part, through: Position): Promise<void> {
    const form = pickForm(projection);
    while (comparePositions(reached[part.index]!, through) < 0) {
      const batch = await inScratch((client, deadline) => {
        const handlerDb = createHandlerDb(client, {
          prepare: false,
          assertUsable: () => throwIfAborted(signal),
          assertStatement,
        });
        const after = reached[part.index]!;
        return applyBatch(form, { client, projection, part, after, through, limit: batchSize, prepared: false, handlerDb, deadline });
      }).catch((error: unknown) => {
        throw signal?.aborted ? new ScratchBuildAborted() : buildFailure(projection, part, error);
      });
      applied += batch.applied;
      if (batch.scannedTo) reached[part.index] = batch.scannedTo;
      options.onBatch?.(applied);
      if (!batch.full || !batch.scannedTo) break;
    }
  }

  return {
    schema,
    async setUp() {
      assertScratchBuildable(projection);
      throwIfAborted(signal);
      await createScratchSchema(pool, schema);
      await inScratch(async (client) => {
        for (const sql of projection.setup) await client.query(sql);
      }).catch((error: unknown) => {
        if (isUserError(error) || isAbort(error)) throw error;
        if (signal?.aborted) throw new ScratchBuildAborted();
        throw new OperationalError(`projection '${projection.name}': setup failed in the scratch schema: ${errorMessage(error)}`, {
          cause: error,
        });
      });
    },
    async buildTo(bounds) {
      if (bounds.length !== parts.length) throw new Error(`buildTo: ${bounds.length} bounds for ${parts.length} parts`);
      const before = applied;
      for (const part of parts) await buildPart(part, bounds[part.index]!);
      return applied - before;
    },
    async drop() {
      await dropScratchSchema(pool, schema);
    },
  };
}

/**
 * A check of each handler statement before it is sent: one that names a schema would reach
 * the live tables. Handlers send the same few statements for every event: each text is read once.
 * @throws UserError naming the projection and the name.
 */
export function createStatementCheck(projection: Projection): (text: string) => void {
  const checked = new Set<string>();
  return (text) => {
    if (checked.has(text)) return;
    assertNoSchemaNamed(projection, text, 'a handler');
    if (checked.size < MAX_CHECKED_STATEMENTS) checked.add(text);
  };
}

/**
 * SQLSTATEs of a name that does not resolve (undefined_table, undefined_function,
 * undefined_object): in a schema of its own, the projection reads a table, function or type
 * that is not its own, which only the live schema's search path finds.
 */
const UNRESOLVED_NAME_CODES = new Set(['42P01', '42883', '42704']);

/**
 * Why a failure of a blue/green build of `projection` means it cannot be built beside the live
 * tables, as a UserError; null when it is a failure like any other. A handler's statement naming
 * a schema is refused before it is sent (a UserError already); one reading a table of someone
 * else's unqualified fails in the build's schema alone, and would otherwise be parked event by
 * event and swapped in as such.
 */
export function unbuildableCause(projection: string, error: unknown): Error | null {
  if (error instanceof SchemaNamedError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !UNRESOLVED_NAME_CODES.has(code)) return null;
  return new UserError(
    `projection '${projection}': ${errorMessage(error)} in its build schema; ` +
      'a projection that reads tables, functions or types other than its own cannot be built beside the live tables',
    { cause: error },
  );
}

/**
 * Refuses a projection whose `setup` or `batch` SQL names a schema: what it names there would
 * be the live tables, not the scratch ones. Handlers' statements are checked as they are sent.
 * @throws UserError naming the projection, the name and where it stands.
 */
export function assertScratchBuildable(projection: Projection): void {
  for (const sql of projection.setup) assertNoSchemaNamed(projection, sql, 'setup');
  for (const sql of projection.batch ?? []) assertNoSchemaNamed(projection, sql, 'batch');
}

function assertNoSchemaNamed(projection: Projection, sql: string, where: string): void {
  const named = schemaQualifiedNames(sql).find((name) => !SCHEMAS_ALLOWED.has(name.schema));
  if (!named) return;
  const source = projection.source ? ` (${projection.source})` : '';
  throw new SchemaNamedError(
    `projection '${projection.name}'${source}: ${where} names schema '${named.schema}' (${named.text}); ` +
      'a scratch build needs unqualified table names, so that they resolve to its own schema',
  );
}

/** A projection's SQL names a schema: it cannot be built in a schema of its own. */
export class SchemaNamedError extends UserError {
  constructor(message: string) {
    super(message);
    this.name = 'SchemaNamedError';
  }
}

/** A handler's failure as one line naming the event (or the batch) and, when split, the part. */
function buildFailure(projection: Projection, part: Part, error: unknown): Error {
  const cause = handlerCause(error);
  if (isUserError(cause) || isAbort(cause)) return cause as Error;
  const at =
    error instanceof EventFailure
      ? ` at event ${error.event.position} (${error.event.type})`
      : error instanceof BatchFailure
        ? ` on ${error.message.replace(/^batch handler failed on /, '')}`
        : '';
  const of = part.count > 1 ? ` (part ${partLabel(part)})` : '';
  return new OperationalError(
    `projection '${projection.name}'${of}: the scratch build failed${at}: ${errorMessage(cause)}`,
    { cause: error },
  );
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new ScratchBuildAborted();
}

/** The build was stopped by its `signal`. */
export class ScratchBuildAborted extends Error {
  constructor() {
    super('the scratch build was interrupted');
    this.name = 'ScratchBuildAborted';
  }
}

function isAbort(error: unknown): boolean {
  return error instanceof ScratchBuildAborted;
}
