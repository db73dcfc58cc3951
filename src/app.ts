import type pg from 'pg';
import { UserError } from './errors.js';
import type { ResolvedConfig } from './config/types.js';
import type { Logger } from './log.js';
import { silentLogger } from './log.js';
import { loadProjections } from './projection/loadProjections.js';
import type { Projection } from './projection/types.js';
import { checkSelections } from './runner/checkSelections.js';
import { createRunner, type Runner, type RunnerState } from './runner/createRunner.js';
import {
  replayProjection,
  selectProjections,
  type ReplayProgress,
  type ReplayResult,
} from './runner/replayProjection.js';
import { appendEvents, type AppendOptions, type AppendResult, type NewEvent } from './store/appendEvents.js';
import { checkOut, checkServer, connectionError, createPool, daemonApplicationName } from './store/connect.js';
import { createListener, type Listener } from './store/createListener.js';
import { assertEraCurrent, startNewEra } from './store/era.js';
import { FAILED_EVENT_STATUSES, listFailedEvents, type FailedEvent } from './store/failedEvents.js';
import { assertRetryable, retryFailedEvent, skipFailedEvent, type ResolveOutcome } from './runner/resolveFailedEvents.js';
import { assertSchemaKnown, migrate } from './store/migrate.js';
import { readOnlyQuery, type ReadOnlyQueryResult } from './store/readOnlyQuery.js';
import { createHttpServer, type HttpServer } from './http/createHttpServer.js';
import { createMetrics } from './http/createMetrics.js';
import { readStatusReport, type ProjectionStatus } from './status/readStatusReport.js';

export interface AppOptions {
  /** @defaultValue a logger that writes nothing */
  logger?: Logger;
  /** Projections to run instead of loading `config.projections.dir`. */
  projections?: Projection[];
}

export interface ProjectionSnapshot {
  name: string;
  version: number;
  state: RunnerState;
}

export interface App {
  /** Migrates, loads projections, starts listening and catching up. Resolves once running. */
  start(): Promise<void>;
  /** Lets batches in flight finish, then releases the listener and the pool. Idempotent. */
  stop(): Promise<void>;
  /** Resolves once every projection has applied everything committed when it looked. */
  caughtUp(): Promise<void>;
  projections(): ProjectionSnapshot[];
}

/** How a projection's batches run: the config's settings, with the module's own policy first. */
function runnerSettings(config: ResolvedConfig, projection: Projection) {
  return {
    batchSize: config.projections.batchSize,
    pollInterval: config.projections.pollInterval,
    batchTimeout: config.projections.batchTimeout,
    onError: projection.onError ?? config.projections.onError,
    maxAttempts: projection.maxAttempts ?? config.projections.maxAttempts,
    maxTransientAttempts: config.projections.maxTransientAttempts,
    preparedStatements: config.database.preparedStatements,
    stallAfter: config.health.stallAfter,
  };
}

/** How the status report reads the config, for `projd status` and `/metrics` alike. */
function statusOptions(config: ResolvedConfig) {
  return { pollInterval: config.projections.pollInterval, stallAfter: config.health.stallAfter };
}

/**
 * The composition root: everything that holds a connection is made here, and released here
 * in reverse order. The CLI's `run` is a thin layer over this; applications can embed it too.
 */
export function createApp(config: ResolvedConfig, options: AppOptions = {}): App {
  const logger = options.logger ?? silentLogger();
  let pool: pg.Pool | undefined;
  let listener: Listener | undefined;
  let httpServer: HttpServer | undefined;
  let runners: Runner[] = [];
  let starting: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;

  async function start(): Promise<void> {
    starting ??= startOnce();
    return starting;
  }

  async function startOnce(): Promise<void> {
    // Projections first: a bad module is reported before anything touches the database.
    const projections = options.projections ?? (await loadProjections(config.projections.dir));
    pool = createPool({ url: config.database.url, max: config.database.poolSize, connectTimeout: config.database.connectTimeout });
    pool.on('error', (error) => logger.warn({ err: error.message }, 'pool.idle_client_error'));
    await checkServer(pool, config.database.url);
    const applied = await migrate(pool);
    if (applied.length > 0) logger.info({ applied }, 'store.migrated');
    await assertEraCurrent(pool);
    // Before any runner: a projection whose handlers changed without a version bump would skip events.
    await checkSelections(pool, projections, logger);

    const activePool = pool;
    const metrics = createMetrics({
      projections: projections.map((projection) => projection.name),
      readStatus: () => readStatusReport(activePool, projections, statusOptions(config)),
      logger,
    });
    runners = projections.map((projection) =>
      createRunner({ pool: activePool, projection, ...runnerSettings(config, projection), logger, observer: metrics.observer }),
    );
    const wakeAll = () => runners.forEach((runner) => runner.wake());
    listener = createListener({
      url: config.database.listenUrl,
      timeout: config.database.connectTimeout,
      probeInterval: config.database.listenProbeInterval,
      logger,
      onNotification: wakeAll,
      onReconnected: wakeAll,
    });
    await listener.start().catch((error: unknown) => {
      throw connectionError(config.database.listenUrl, error);
    });
    // The port before any runner starts: a second daemon whose port is taken exits 2 having run nothing.
    if (config.metrics.port !== 0) {
      httpServer = createHttpServer({
        host: config.metrics.host,
        port: config.metrics.port,
        metrics,
        snapshots: () => runners.map((runner) => runner.snapshot()),
        stuckAfter: config.health.stuckAfter,
        pollInterval: config.projections.pollInterval,
        logger,
      });
      await httpServer.start();
    }
    for (const runner of runners) runner.start();
    logger.info({ projections: projections.map((projection) => projection.name) }, 'daemon.started');
  }

  async function release(): Promise<void> {
    await httpServer?.stop();
    await Promise.all(runners.map((runner) => runner.stop()));
    await listener?.stop();
    await pool?.end();
    logger.info('daemon.stopped');
  }

  return {
    start,
    stop() {
      // A stop during start waits for start to settle, so nothing it opens is left behind.
      stopping ??= (starting ?? Promise.resolve()).catch(() => undefined).then(release);
      return stopping;
    },
    async caughtUp() {
      await Promise.all(runners.map((runner) => runner.caughtUp));
    },
    projections() {
      return runners.map(({ projection, state }) => ({ name: projection.name, version: projection.version, state }));
    },
  };
}

/** `projd migrate`: creates or upgrades projd's tables, and returns the migrations it applied. */
export async function migrateStore(config: ResolvedConfig): Promise<string[]> {
  return withPool(config, { migrate: true }, async (_pool, applied) => applied);
}

/**
 * `projd migrate --new-era`: repairs a store restored into another cluster, so that what it
 * holds sorts before everything written from now on. Returns null when it was not needed.
 */
export async function startNewStoreEra(config: ResolvedConfig): Promise<{ from: number; to: number } | null> {
  return withPool(config, { migrate: true }, async (pool) => {
    const { client, release } = await checkOut(pool);
    try {
      return await startNewEra(client);
    } finally {
      release();
    }
  });
}

export { isVersionConflictError, type AppendResult, type ExpectedVersion, type NewEvent } from './store/appendEvents.js';

/**
 * `projd append`: appends `events` to the end of a stream in one statement (all or none), after
 * creating projd's tables if need be, as `run` would. A restored store is refused, as by `run`.
 */
export async function appendToStream(
  config: ResolvedConfig,
  streamId: string,
  events: readonly NewEvent[],
  options: AppendOptions = {},
): Promise<AppendResult> {
  return withPool(config, { migrate: true }, async (pool) => {
    await assertEraCurrent(pool);
    return appendEvents(pool, streamId, events, options);
  });
}

export type { ReadOnlyQueryResult };

/**
 * `projd query`: runs one SQL statement in a read-only transaction, which is then rolled
 * back, and returns its rows: a look at a read model with nothing but projd installed.
 */
export async function queryReadOnly(config: ResolvedConfig, sql: string): Promise<ReadOnlyQueryResult> {
  return withPool(config, { migrate: false, max: 1 }, async (pool) => {
    const { client, release } = await checkOut(pool);
    try {
      return await readOnlyQuery(client, sql);
    } finally {
      release();
    }
  });
}

export type { ReplayProgress, ReplayResult };

export interface ReplayOptions {
  /** @defaultValue a logger that writes nothing */
  logger?: Logger;
  /** Projections to choose from instead of loading `config.projections.dir`. */
  projections?: Projection[];
  /** Told how far each replay has come: at its start, every `progressInterval`, and once caught up. */
  onProgress?: (progress: ReplayProgress) => void;
  /** Milliseconds between progress reports. @defaultValue 1000 */
  progressInterval?: number;
}

/**
 * `projd replay`: clears each named projection (or all) and rebuilds it from position 0, one
 * after the other, returning once each has caught up. Safe while daemons run elsewhere: they
 * go on from wherever the replay leaves the projection.
 */
export async function replayProjections(
  config: ResolvedConfig,
  target: readonly string[] | { all: true },
  options: ReplayOptions = {},
): Promise<ReplayResult[]> {
  const logger = options.logger ?? silentLogger();
  const projections = options.projections ?? (await loadProjections(config.projections.dir));
  const selected = selectProjections(projections, target, config.projections.dir);
  // Three connections: the batch in flight, the progress counts beside it, and a batch timeout's cancel.
  return withPool(config, { migrate: true, max: 3, logger }, async (pool) => {
    await assertEraCurrent(pool); // a restored store would reset, then wait for ever behind the gate
    const results: ReplayResult[] = [];
    for (const projection of selected) {
      results.push(
        await replayProjection({
          pool,
          projection,
          ...runnerSettings(config, projection),
          logger,
          onProgress: options.onProgress,
          progressInterval: options.progressInterval,
        }),
      );
    }
    return results;
  });
}

export interface FailedEventsQuery {
  projection?: string;
  /** Include retried and skipped events, not only parked ones. */
  all?: boolean;
}

/** `projd failed list`: the parked events (or every recorded one), by projection and position. */
export async function listFailed(config: ResolvedConfig, query: FailedEventsQuery = {}): Promise<FailedEvent[]> {
  return withPool(config, { migrate: true }, (pool) =>
    listFailedEvents(pool, {
      ...(query.projection === undefined ? {} : { projection: query.projection }),
      statuses: query.all ? FAILED_EVENT_STATUSES : ['parked'],
    }),
  );
}

/**
 * `projd failed retry`: applies parked events through the current handlers (loaded from the
 * projections folder), each in its own locked transaction. `ids: 'all'` takes every parked
 * event (of `projection`, when given). Refused before any is touched when an id is unknown or
 * a parked event has no handler here.
 */
export async function retryFailed(
  config: ResolvedConfig,
  ids: readonly bigint[] | 'all',
  options: { projection?: string; projections?: Projection[] } = {},
): Promise<ResolveOutcome[]> {
  const projections = options.projections ?? (await loadProjections(config.projections.dir));
  const byName = new Map(projections.map((projection) => [projection.name, projection]));
  return withPool(config, { migrate: true }, async (pool) => {
    const targets = ids === 'all' ? await parkedEvents(pool, options.projection) : await knownEvents(pool, ids);
    assertRetryable(targets, byName, config.projections.dir);
    const outcomes: ResolveOutcome[] = [];
    for (const { id } of targets) outcomes.push(await retryFailedEvent(pool, byName, id));
    return outcomes;
  });
}

/** `projd failed skip`: gives up on parked events; a projection halted on one moves past it. */
export async function skipFailed(config: ResolvedConfig, ids: readonly bigint[]): Promise<ResolveOutcome[]> {
  return withPool(config, { migrate: true }, async (pool) => {
    const outcomes: ResolveOutcome[] = [];
    for (const { id } of await knownEvents(pool, ids)) outcomes.push(await skipFailedEvent(pool, id));
    return outcomes;
  });
}

async function parkedEvents(pool: pg.Pool, projection: string | undefined): Promise<FailedEvent[]> {
  return listFailedEvents(pool, projection === undefined ? {} : { projection });
}

/** The events of the ids as given, in their order, once every one is recorded: a typo acts on none. */
async function knownEvents(pool: pg.Pool, ids: readonly bigint[]): Promise<FailedEvent[]> {
  const known = new Map(
    (await listFailedEvents(pool, { ids, statuses: FAILED_EVENT_STATUSES })).map((event) => [event.id, event]),
  );
  const unknown = ids.filter((id) => !known.has(id));
  if (unknown.length > 0) throw new UserError(`no failed event with id ${unknown.join(', ')} (see projd failed list)`);
  return ids.map((id) => known.get(id)!);
}

interface CommandPoolOptions {
  /** Create or upgrade projd's tables first; `work` gets the migrations applied. */
  migrate: boolean;
  /** @defaultValue 2 */
  max?: number;
  /** Told of idle connections lost and migrations applied. @defaultValue a logger that writes nothing */
  logger?: Logger;
}

/** A small pool for one command: the server checked, optionally migrated, ended whatever happens. */
async function withPool<T>(
  config: ResolvedConfig,
  { migrate: migrateFirst, max = 2, logger = silentLogger() }: CommandPoolOptions,
  work: (pool: pg.Pool, applied: string[]) => Promise<T>,
): Promise<T> {
  const pool = createPool({
    url: config.database.url,
    max,
    connectTimeout: config.database.connectTimeout,
    applicationName: daemonApplicationName('cli'),
  });
  // An idle connection lost meanwhile must not end the process: the next query on it fails by itself.
  pool.on('error', (error) => logger.warn({ err: error.message }, 'pool.idle_client_error'));
  try {
    await checkServer(pool, config.database.url);
    let applied: string[] = [];
    if (migrateFirst) applied = await migrate(pool);
    else await assertSchemaKnown(pool); // a command that does not migrate still refuses a newer schema
    if (applied.length > 0) logger.info({ applied }, 'store.migrated');
    return await work(pool, applied);
  } finally {
    await pool.end();
  }
}

export interface ReadStatusOptions {
  /** Projections to report on instead of loading `config.projections.dir`. */
  projections?: Projection[];
  /**
   * Told of each file in `config.projections.dir` that cannot be loaded; the report goes on
   * without it. @defaultValue unset: such a file fails the call
   */
  onRefusedFile?: (error: UserError) => void;
}

/**
 * `projd status`: each projection's state, position and lag, read from the tables in one
 * statement; no daemon needs to run. Only loaded projections are listed: the checkpoint of a
 * projection removed from the folder (or whose file cannot be loaded) stays in
 * `projd.checkpoints` but is not reported.
 */
export async function readStatus(config: ResolvedConfig, options: ReadStatusOptions = {}): Promise<ProjectionStatus[]> {
  const { onRefusedFile } = options;
  const projections =
    options.projections ?? (await loadProjections(config.projections.dir, onRefusedFile ? { onRefusedFile } : {}));
  return withPool(config, { migrate: false, max: 1 }, async (pool) => {
    const report = await readStatusReport(pool, projections, statusOptions(config));
    return report.projections;
  });
}
