import type pg from 'pg';
import type { ResolvedConfig } from '../config/types.js';
import { UserError } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { loadProjections } from '../projection/loadProjections.js';
import type { Projection } from '../projection/types.js';
import { selectionChangeMessage } from '../runner/checkSelections.js';
import { selectProjections } from '../runner/replayProjection.js';
import { assertScratchBuildable, createScratchBuild } from '../runner/scratchBuild.js';
import { runnerSettings } from '../settings.js';
import { selectCheckpoint } from '../store/checkpoints.js';
import { checkOut } from '../store/connect.js';
import { countApplied } from '../store/countEvents.js';
import { partsOfProjection } from '../store/part.js';
import { comparePositions, positionText, START, type Position } from '../store/position.js';
import { scratchSchemaName, tableChecksum, tableShape, tablesInSchema, type TableShape } from '../store/scratchSchema.js';
import { compareSelections, selectionOf } from '../store/selection.js';
import { withPool } from './withPool.js';

export { ScratchBuildAborted } from '../runner/scratchBuild.js';

/** How far a verify's scratch build has come. */
export interface VerifyProgress {
  projection: string;
  /** Events applied to the scratch build so far. */
  done: number;
  /** The projection's events up to its checkpoint: what the build applies in all. */
  total: number;
  elapsedMs: number;
  /** True on the last report: the build is done. */
  finished: boolean;
}

export interface VerifyOptions {
  /** @defaultValue a logger that writes nothing */
  logger?: Logger;
  /** Projections to choose from instead of loading `config.projections.dir`. */
  projections?: Projection[];
  /** Told at the start, after a batch once `progressInterval` has passed since the last report, and at the end. */
  onProgress?: (progress: VerifyProgress) => void;
  /** Milliseconds between progress reports. @defaultValue 1000 */
  progressInterval?: number;
  /** Aborting stops the build; the scratch schema is dropped and `ScratchBuildAborted` thrown. */
  signal?: AbortSignal;
}

/** A table's row count and order-independent checksum (see `tableChecksum`). */
export interface TableContent {
  rows: string;
  checksum: string;
}

/** One table the scratch build created, against the live table of the same name. */
export interface TableVerdict {
  table: string;
  /**
   * `equal`; `different` (rows or checksum); `missing` (no live table of that name); `columns`
   * (other columns or types, so the rows were not compared); `moved` (created by a handler
   * rather than `setup`, and the live projection moved on before it could be read at the
   * build's checkpoint: run verify again).
   */
  verdict: 'equal' | 'different' | 'missing' | 'columns' | 'moved';
  /** The live table, as `schema.table`; null when missing. */
  liveTable: string | null;
  live: TableContent | null;
  rebuilt: TableContent;
  /** With `columns`: each side's columns, `name type`. */
  liveColumns?: string[];
  rebuiltColumns?: string[];
}

export interface VerifyResult {
  projection: string;
  version: number;
  /** The live checkpoint the build went up to, per part (one when not split), `era/transaction/position`. */
  checkpoints: string[];
  /** Events the scratch build applied. */
  events: number;
  elapsedMs: number;
  tables: TableVerdict[];
  /** Every table equal. */
  equal: boolean;
}

/**
 * `projd verify <name>`: rebuilds the projection from the store into a scratch schema, up to
 * the live checkpoint read once at the start, and compares each table the build created with
 * the live table of the same name (row count and an order-independent checksum). The live
 * projection (its tables, checkpoint and lock) and running daemons are not touched; the
 * scratch schema is dropped at the end, also on failure or abort.
 *
 * @throws UserError for an unknown projection, one that names schemas in its SQL, or one the
 *   store holds at another version, split otherwise, or not at all.
 * @throws OperationalError when a handler fails in the scratch build.
 */
export async function verifyProjection(config: ResolvedConfig, name: string, options: VerifyOptions = {}): Promise<VerifyResult> {
  const logger = options.logger ?? silentLogger();
  const projections = options.projections ?? (await loadProjections(config.projections.dir));
  const [projection] = selectProjections(projections, [name], config.projections.dir);
  assertScratchBuildable(projection!);
  return withPool(config, { migrate: false, max: 3, logger }, (pool) => verifyOn(pool, config, projection!, options, logger));
}

async function verifyOn(
  pool: pg.Pool,
  config: ResolvedConfig,
  projection: Projection,
  options: VerifyOptions,
  logger: Logger,
): Promise<VerifyResult> {
  const startedAt = performance.now();
  const { progressInterval = 1000 } = options;
  const { batchSize, batchTimeout } = runnerSettings(config, projection);
  let total = 0;
  let reportedAt = startedAt;
  const report = (done: number, finished: boolean) => {
    reportedAt = performance.now();
    options.onProgress?.({ projection: projection.name, done, total, elapsedMs: reportedAt - startedAt, finished });
  };
  const build = createScratchBuild({
    pool,
    projection,
    schema: scratchSchemaName(projection.name),
    batchSize,
    timeoutMs: batchTimeout,
    signal: options.signal,
    onBatch: (done) => {
      if (performance.now() - reportedAt >= progressInterval) report(done, false);
    },
  });
  logger.info({ projection: projection.name, schema: build.schema }, 'verify.started');
  try {
    await build.setUp();
    const start = await readLive(pool, projection, await tablesInSchema(pool, build.schema));
    total = start.events;
    report(0, false);
    const events = await build.buildTo(start.bounds);
    report(events, true);

    // Tables a handler created rather than `setup`: read live now, if still at the same checkpoint.
    const built = await tablesInSchema(pool, build.schema);
    const late = built.filter((table) => !start.tables.has(table));
    const later = late.length > 0 ? await readLive(pool, projection, late) : undefined;
    const moved = later !== undefined && later.bounds.some((bound, i) => comparePositions(bound, start.bounds[i]!) !== 0);

    const tables: TableVerdict[] = [];
    for (const table of built) {
      const rebuiltShape = (await tableShape(pool, table, build.schema))!;
      const rebuilt = toContent(await tableChecksum(pool, rebuiltShape));
      // null: no live table of that name (a key with a null value, not a missing key).
      const live = (start.tables.has(table) ? start.tables.get(table) : later?.tables.get(table)) ?? null;
      tables.push(verdictOf(table, rebuiltShape, rebuilt, live, moved && !start.tables.has(table)));
    }
    const elapsedMs = performance.now() - startedAt;
    const equal = tables.every((table) => table.verdict === 'equal');
    logger.info({ projection: projection.name, events, equal, ms: Math.round(elapsedMs) }, 'verify.done');
    return {
      projection: projection.name,
      version: projection.version,
      checkpoints: start.bounds.map(positionText),
      events,
      elapsedMs,
      tables,
      equal,
    };
  } finally {
    await build.drop();
  }
}

/** A live table as read in the snapshot of the checkpoint: null content when it does not exist. */
type LiveTable = { shape: TableShape; content: TableContent } | null;

interface LiveState {
  /** The checkpoint of each part. */
  bounds: Position[];
  /** The projection's events up to them. */
  events: number;
  tables: Map<string, LiveTable>;
}

/**
 * The live checkpoints and tables, read in one snapshot (repeatable read): a batch commits its
 * writes with its checkpoint, so the tables read are exactly those the checkpoints stand for,
 * however far the daemon goes meanwhile. Read-only, without a transaction id: it holds no
 * projection's gate back.
 */
async function readLive(pool: pg.Pool, projection: Projection, tables: readonly string[]): Promise<LiveState> {
  const { client, release } = await checkOut(pool);
  let broken: Error | undefined;
  try {
    await client.query('begin isolation level repeatable read read only');
    const bounds: Position[] = [];
    let events = 0;
    for (const part of partsOfProjection(projection)) {
      const checkpoint = await selectCheckpoint(client, projection.name, part.index);
      assertComparable(projection, checkpoint);
      const counted = await countApplied(client, projection.name, { eventTypes: projection.eventTypes, after: START, part });
      events += counted?.count ?? 0;
      bounds.push(checkpoint!);
    }
    const live = new Map<string, LiveTable>();
    for (const table of tables) {
      const shape = await tableShape(client, table);
      live.set(table, shape && { shape, content: toContent(await tableChecksum(client, shape)) });
    }
    await client.query('commit');
    return { bounds: bounds.map(({ era, transactionId, position }) => ({ era, transactionId, position })), events, tables: live };
  } catch (error) {
    broken = error as Error;
    throw error;
  } finally {
    release(broken);
  }
}

/** The live tables must have been built by this code for a rebuild to be comparable with them. */
function assertComparable(projection: Projection, checkpoint: Awaited<ReturnType<typeof selectCheckpoint>>): void {
  const subject = `projection '${projection.name}'`;
  if (!checkpoint) throw new UserError(`${subject} has not been set up in this store yet: nothing to verify`);
  if (checkpoint.version !== projection.version) {
    throw new UserError(
      `${subject}: the store holds version ${checkpoint.version}, version ${projection.version} is loaded; verify runs the code that built the live tables`,
    );
  }
  const parts = projection.partitions ?? 1;
  if (checkpoint.parts !== parts) {
    throw new UserError(
      `${subject}: the store is split into ${checkpoint.parts} part(s), partitions: ${parts} is loaded; a daemon restart rebuilds it`,
    );
  }
  const change = compareSelections(checkpoint.selection, selectionOf(projection));
  if (change) throw new UserError(selectionChangeMessage(projection.name, change));
}

function verdictOf(table: string, shape: TableShape, rebuilt: TableContent, live: LiveTable, moved: boolean): TableVerdict {
  const base = { table, rebuilt };
  if (!live) return { ...base, verdict: 'missing', liveTable: null, live: null };
  const liveTable = `${live.shape.schema}.${live.shape.name}`;
  if (moved) return { ...base, verdict: 'moved', liveTable, live: null };
  const columnsOf = (one: TableShape) => one.columns.map((column, i) => `${column} ${one.types[i]}`);
  const liveColumns = columnsOf(live.shape);
  const rebuiltColumns = columnsOf(shape);
  if (liveColumns.join(',') !== rebuiltColumns.join(',')) {
    return { ...base, verdict: 'columns', liveTable, live: live.content, liveColumns, rebuiltColumns };
  }
  const same = live.content.rows === rebuilt.rows && live.content.checksum === rebuilt.checksum;
  return { ...base, verdict: same ? 'equal' : 'different', liveTable, live: live.content };
}

function toContent(checksum: { rows: bigint; checksum: string }): TableContent {
  return { rows: checksum.rows.toString(), checksum: checksum.checksum };
}
