import type pg from 'pg';
import type { ResolvedConfig } from './config/types.js';
import type { Logger } from './log.js';
import { errorMessage } from './errors.js';
import { silentLogger } from './log.js';
import { loadProjections } from './projection/loadProjections.js';
import type { Projection } from './projection/types.js';
import { checkSelections } from './runner/checkSelections.js';
import { createBlueGreen, type BlueGreen } from './runner/blueGreen.js';
import { createRunner, type Runner, type RunnerState } from './runner/createRunner.js';
import { runnerSettings, statusOptions } from './settings.js';
import { checkServer, connectionError, createPool } from './store/connect.js';
import { createListener, type Listener } from './store/createListener.js';
import { assertAdoptionMatches, lostGuarantees, readAdoption } from './store/adoption.js';
import { assertEraCurrent } from './store/era.js';
import { migrate } from './store/migrate.js';
import { EVENTS_CHANNEL, PROGRESS_CHANNEL } from './store/names.js';
import { partsOfProjection } from './store/part.js';
import { createHttpServer, type HttpServer } from './http/createHttpServer.js';
import { createMetrics } from './http/createMetrics.js';
import { readStatusReport } from './status/readStatusReport.js';
import { createProgressWaiters, type ProgressWaiters } from './wait/progressWaiters.js';
import { createProgressAnnouncer, type ProgressAnnouncer } from './runner/progressAnnouncer.js';
import { startWakeWatch, type WakeWatch } from './runner/wakeWatch.js';
import { progressPayload, type ProgressNotice } from './store/progressNotice.js';

// How often the daemon looks at the writer that took the wake-up (runner/wakeWatch.ts): one
// small query; a writer that rolled back after others committed silently costs at most this.
const WAKE_WATCH_MS = 100;

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

/**
 * The composition root: everything that holds a connection is made here, and released here
 * in reverse order. The CLI's `run` is a thin layer over this; applications can embed it too.
 */
export function createApp(config: ResolvedConfig, options: AppOptions = {}): App {
  const logger = options.logger ?? silentLogger();
  let pool: pg.Pool | undefined;
  let listener: Listener | undefined;
  let wakeWatch: WakeWatch | undefined;
  let httpServer: HttpServer | undefined;
  let waiters: ProgressWaiters | undefined;
  let progress: ProgressAnnouncer | undefined;
  let announcePool: pg.Pool | undefined;
  let runners: Runner[] = [];
  const builds: BlueGreen[] = [];
  let starting: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;

  async function start(): Promise<void> {
    starting ??= startOnce();
    return starting;
  }

  async function startOnce(): Promise<void> {
    // Projections first: a bad module is reported before anything touches the database.
    const projections = options.projections ?? (await loadProjections(config.projections.dir));
    // A runner per part: each holds a connection for the length of its batch, and the parts
    // only overlap when they have one each. One more for progress reads and error reports.
    const runnerCount = projections.reduce((sum, projection) => sum + (projection.partitions ?? 1), 0);
    const poolSize = Math.max(config.database.poolSize, runnerCount + 1);
    if (poolSize > config.database.poolSize) {
      logger.info({ poolSize, configured: config.database.poolSize, runners: runnerCount }, 'pool.sized');
    }
    pool = createPool({ url: config.database.url, max: poolSize, connectTimeout: config.database.connectTimeout });
    pool.on('error', (error) => logger.warn({ err: error.message }, 'pool.idle_client_error'));
    await checkServer(pool, config.database.url);
    const applied = await migrate(pool);
    if (applied.length > 0) logger.info({ applied }, 'store.migrated');
    const adoption = await readAdoption(pool);
    assertAdoptionMatches(config.events, adoption);
    for (const { guarantee, message } of adoption ? lostGuarantees(adoption) : []) {
      logger.warn({ guarantee, detail: message }, 'store.guarantee_lost');
    }
    await assertEraCurrent(pool);
    // Before any runner: a projection whose handlers changed without a version bump would skip events.
    await checkSelections(pool, projections, logger);

    const activePool = pool;
    const metrics = createMetrics({
      projections: projections.map((projection) => projection.name),
      readStatus: () => readStatusReport(activePool, projections, statusOptions(config)),
      logger,
    });
    // `GET /wait` waits on this daemon's listener: the batches' progress notices, of every daemon,
    // and this daemon's own batches at once, without the round trip through the server.
    const progressWaiters = createProgressWaiters({
      db: activePool,
      missingProjection: 'wait',
      prepared: config.database.preparedStatements,
    });
    waiters = progressWaiters;
    // A connection of its own, for the notices and the wake-up's watch: a notice waits its turn
    // behind every notifying writer's flush, and neither may hold a connection the runners'
    // batches count on (nor take turns with them: a batch keeps finding its own connection,
    // with its prepared statements).
    announcePool = createPool({ url: config.database.url, max: 1, connectTimeout: config.database.connectTimeout });
    announcePool.on('error', (error) => logger.warn({ err: error.message }, 'pool.idle_client_error'));
    const announcer = createProgressAnnouncer(announcePool, (error) =>
      logger.warn({ err: errorMessage(error) }, 'progress.notice_failed'),
    );
    progress = announcer;
    const announce = (notice: ProgressNotice) => {
      progressWaiters.notice(progressPayload(notice));
      announcer.announce(notice);
    };
    runners = projections.flatMap((projection) => {
      const settings = runnerSettings(config, projection);
      const common = { pool: activePool, projection, ...settings, logger, observer: metrics.observer };
      // A version bump builds the new version beside the old one, which serves until the swap.
      const blueGreen = createBlueGreen({
        runner: common,
        mode: config.projections.rebuild,
        keepOldTables: config.projections.keepOldTables,
        announce,
        onSwapped: () => live.forEach((runner) => runner.wake()),
      });
      builds.push(blueGreen);
      const live = partsOfProjection(projection).map((part) =>
        createRunner({
          ...common,
          part,
          announce,
          buildsBesideLive: blueGreen.besideLive,
          onAwaitingBuild: blueGreen.awaiting,
        }),
      );
      return live;
    });
    const wakeAll = () => runners.forEach((runner) => runner.wake());
    listener = createListener({
      url: config.database.listenUrl,
      timeout: config.database.connectTimeout,
      probeInterval: config.database.listenProbeInterval,
      logger,
      channels: { [EVENTS_CHANNEL]: wakeAll, [PROGRESS_CHANNEL]: (payload) => progressWaiters.notice(payload) },
      onReconnected: () => {
        wakeAll();
        progressWaiters.recheck();
      },
    });
    await listener.start().catch((error: unknown) => {
      throw connectionError(config.database.listenUrl, error);
    });
    wakeWatch = startWakeWatch({ db: announcePool, intervalMs: WAKE_WATCH_MS, wake: wakeAll, logger });
    // The port before any runner starts: a second daemon whose port is taken exits 2 having run nothing.
    if (config.metrics.port !== 0) {
      httpServer = createHttpServer({
        host: config.metrics.host,
        port: config.metrics.port,
        metrics,
        snapshots: () => [...runners.map((runner) => runner.snapshot()), ...builds.flatMap((build) => build.snapshots())],
        wait: { projections: projections.map((projection) => projection.name), waiters: progressWaiters },
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
    waiters?.close(); // a long poll in progress answers at once rather than hold the server open
    await httpServer?.stop();
    await Promise.all([...runners.map((runner) => runner.stop()), ...builds.map((build) => build.stop())]);
    await progress?.settled(); // the last batches' notices, before the pool goes
    await wakeWatch?.stop();
    await announcePool?.end();
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
      // One per projection: a split one is in the state of its first part.
      const first = runners.filter((runner, i) => runners.findIndex((other) => other.projection === runner.projection) === i);
      return first.map(({ projection, state }) => ({ name: projection.name, version: projection.version, state }));
    },
  };
}
