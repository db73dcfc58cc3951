import type pg from 'pg';
import { jitteredBackoff } from '../backoff.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { Projection } from '../projection/types.js';
import { PROJECTION_STATES } from '../projectionStates.js';
import { buildKey, buildSchemaName, dropSchema } from '../store/buildSchema.js';
import { lockProjection } from '../store/locks.js';
import { CHECKPOINTS_TABLE, FAILED_EVENTS_TABLE } from '../store/names.js';
import { partsOfProjection } from '../store/part.js';
import type { ProgressNotice } from '../store/progressNotice.js';
import { createRunner, type Runner, type RunnerOptions, type RunnerSnapshot } from './createRunner.js';
import { handlerCause } from './batchErrors.js';
import { inCancellableTransaction } from './cancellableTransaction.js';
import { assertScratchBuildable, createStatementCheck, unbuildableCause } from './scratchBuild.js';
import { buildProjectionOf, swapBuild, type SwapResult } from './swapBuild.js';
import { createWakeup, delay } from './wakeup.js';

/** How often a daemon that shares a build with others looks whether its parts have caught up. */
const SWAP_CHECK_MS = 250;

/** How a version bump (or a new number of parts) rebuilds a projection. */
export type RebuildMode = 'blue-green' | 'in-place';

export interface BlueGreenOptions {
  /** The runners' options, as the live projection's runners get them (without their part). */
  runner: Omit<RunnerOptions, 'part' | 'build' | 'buildsBesideLive' | 'onAwaitingBuild' | 'announce'>;
  /** `projections.rebuild`: `in-place` rebuilds every projection in place, as `projd replay` does. */
  mode: RebuildMode;
  keepOldTables: boolean;
  /** Told where the live projection stands after the swap: for waiters. */
  announce?: (notice: ProgressNotice) => void;
  /** Called after the swap: the live projection's runners take over at once. */
  onSwapped: () => void;
}

/**
 * The blue/green rebuild of one projection. When its live checkpoint is of an older version,
 * the live runners leave it serving (the older daemons keep it live) and call `awaiting()`;
 * this then runs the new version in build runners, one per part, into a schema of its own
 * under a checkpoint of its own (see `buildProjectionOf`), and once every part has caught up,
 * swaps it in (see `swapBuild`). A crash resumes the build from its checkpoint; a newer version
 * starts its own build over this one's.
 *
 * A projection whose SQL names a schema cannot build beside the live tables: it rebuilds in
 * place, with a warning, as it does with `mode: in-place`.
 */
export interface BlueGreen {
  /** Whether a version change builds beside the live version now (false: rebuild in place). */
  besideLive(): boolean;
  /** A live runner found the older version serving: start the build if it is not running. */
  awaiting(): void;
  /** The build's runners while they run, for `/healthz`. */
  snapshots(): RunnerSnapshot[];
  /** Stops the build's runners and waits for a swap in flight. */
  stop(): Promise<void>;
}

export function createBlueGreen(options: BlueGreenOptions): BlueGreen {
  const { runner: runnerOptions } = options;
  const { projection, pool } = runnerOptions;
  const logger = runnerOptions.logger.child({ projection: projection.name });
  const schema = buildSchemaName(projection.name);
  const assertStatement = createStatementCheck(projection);
  let inPlaceBecause: string | null = options.mode === 'in-place' ? 'in-place' : buildableProblem(projection);
  let warned = false;
  let runners: Runner[] = [];
  let building: Promise<void> | undefined;
  const stopping = new AbortController();
  const wakeup = createWakeup();
  // A build runner found the live projection at this version or a newer one, which it holds.
  const swappedElsewhere = settleOnce<number>();

  function besideLive(): boolean {
    if (inPlaceBecause === null) return true;
    if (!warned && inPlaceBecause !== 'in-place') {
      warned = true;
      logger.warn({ reason: inPlaceBecause }, `projection.rebuild_in_place: ${inPlaceBecause}; it rebuilds in place`);
    }
    return false;
  }

  function awaiting(): void {
    if (building || stopping.signal.aborted || inPlaceBecause !== null) return;
    building = build().catch((error: unknown) => {
      logger.error({ err: errorMessage(error) }, 'build.failed');
    });
  }

  /** Runs the build's runners until each has caught up once, then swaps, retrying until it is done. */
  async function build(): Promise<void> {
    const buildProjection = buildProjectionOf(projection);
    runners = partsOfProjection(projection).map((part) =>
      createRunner({
        ...runnerOptions,
        projection: buildProjection,
        part,
        build: {
          schema,
          live: projection.name,
          assertStatement,
          onUnbuildable: (error) => void unbuildable(error),
          onSwapped: (liveVersion) => swappedElsewhere.resolve(liveVersion),
        },
      }),
    );
    for (const runner of runners) runner.start();
    logger.info({ schema }, `build.started: version ${projection.version} builds in schema ${schema}`);
    let attempt = 0;
    while (!stopping.signal.aborted && inPlaceBecause === null) {
      await Promise.race([readyToSwap(), aborted(), swappedElsewhere.promise]);
      if (stopping.signal.aborted || inPlaceBecause !== null) break;
      const liveVersion = swappedElsewhere.value;
      if (liveVersion !== undefined) {
        // Swapped by another daemon, or put at this version some other way (`projd replay`):
        // then the build is left over, and goes.
        await dropBuild(pool, projection, runnerOptions.batchTimeout).catch((error: unknown) =>
          logger.warn({ err: errorMessage(error) }, 'build.drop_failed'),
        );
        if (liveVersion > projection.version) {
          logger.info({ liveVersion }, `build.superseded: version ${liveVersion} is live`);
          options.onSwapped();
        } else {
          swapped({ kind: 'already_swapped' });
        }
        break;
      }
      if (runners.some((runner) => runner.state === PROJECTION_STATES.versionAhead)) {
        logger.info('build.superseded: a newer version builds in its place');
        options.onSwapped(); // the live runners find out for themselves what the store holds
        break;
      }
      try {
        const swapStarted = performance.now();
        const result = await swapBuild({
          pool,
          projection,
          batchSize: runnerOptions.batchSize,
          timeoutMs: runnerOptions.batchTimeout,
          keepOldTables: options.keepOldTables,
          assertStatement,
        });
        if (result.kind === 'already_swapped') await dropBuild(pool, projection, runnerOptions.batchTimeout); // left over, if anything is
        if (result.kind !== 'not_ready') {
          swapped(result, Math.round(performance.now() - swapStarted));
          break;
        }
        logger.info({ reason: result.reason }, 'build.not_ready');
      } catch (error) {
        const cause = unbuildableCause(projection.name, handlerCause(error));
        if (cause) return void (await unbuildable(cause));
        logger.warn({ err: errorMessage(error) }, 'build.swap_failed');
      }
      attempt += 1;
      await wakeup.wait(Math.round(jitteredBackoff(attempt, 100, runnerOptions.pollInterval)));
    }
    await stopRunners();
  }

  /**
   * Resolves once each part this daemon builds has caught up once, and it builds at least one:
   * the parts another daemon builds are caught up inside the swap, or the swap waits (see
   * `swapBuild`). A daemon that builds no part leaves the swap to those that do.
   */
  async function readyToSwap(): Promise<void> {
    const ready = () => {
      const active = runners.filter((runner) => runner.state !== PROJECTION_STATES.standby);
      return active.length > 0 && active.every((runner) => runner.snapshot().caughtUpOnce);
    };
    while (!ready() && !stopping.signal.aborted && swappedElsewhere.value === undefined) {
      // A runner that caught up once, then stood by, has settled its promise: wait for the others.
      const catchingUp = runners.filter((runner) => !runner.snapshot().caughtUpOnce).map((runner) => runner.caughtUp);
      await Promise.race([...catchingUp, delay(SWAP_CHECK_MS, stopping.signal)]);
    }
  }

  /** `ms`: how long the swap's transaction took, its locks included: what readers may have waited. */
  function swapped(result: Exclude<SwapResult, { kind: 'not_ready' }>, ms?: number): void {
    if (result.kind === 'already_swapped') {
      logger.info('build.swapped_elsewhere: another daemon swapped the build in');
    } else {
      const { oldTables, moves } = result;
      logger.info(
        {
          fromVersion: result.fromVersion,
          version: projection.version,
          moved: moves.moved,
          replaced: moves.replaced,
          caughtUp: result.caughtUp,
          ms,
          ...(oldTables.kept ? { keptIn: oldTables.schema } : {}),
        },
        `build.swapped: version ${projection.version} replaced version ${result.fromVersion ?? 'none'}`,
      );
      if (oldTables.dependents.length > 0) {
        logger.warn(
          { schema: oldTables.schema, dependents: oldTables.dependents },
          `build.old_tables_kept: ${oldTables.dependents.join(', ')} depend on the replaced tables, kept in schema ${oldTables.schema}`,
        );
      }
      result.checkpoints.forEach((checkpoint, index) =>
        options.announce?.({ projection: projection.name, part: index, parts: result.checkpoints.length, checkpoint }),
      );
    }
    options.onSwapped();
  }

  /** A handler's statement names a schema: the build is dropped, and the projection rebuilds in place. */
  async function unbuildable(error: Error): Promise<void> {
    if (inPlaceBecause !== null) return;
    inPlaceBecause = errorMessage(error);
    wakeup.wake();
    await stopRunners();
    await dropBuild(pool, projection, runnerOptions.batchTimeout).catch((dropError: unknown) =>
      logger.warn({ err: errorMessage(dropError) }, 'build.drop_failed'),
    );
    besideLive(); // warns
    options.onSwapped(); // the live runners rebuild in place at once
  }

  async function stopRunners(): Promise<void> {
    const stopped = runners;
    runners = [];
    await Promise.all(stopped.map((runner) => runner.stop()));
  }

  function aborted(): Promise<void> {
    return new Promise((resolve) => stopping.signal.addEventListener('abort', () => resolve(), { once: true }));
  }

  return {
    besideLive,
    awaiting,
    snapshots: () => runners.map((runner) => runner.snapshot()),
    async stop() {
      stopping.abort();
      wakeup.wake();
      await stopRunners();
      await building;
    },
  };
}

/** A promise settled at most once, with its value readable once it is. */
function settleOnce<T>(): { promise: Promise<void>; resolve: (value: T) => void; readonly value: T | undefined } {
  let resolve!: () => void;
  let value: T | undefined;
  const promise = new Promise<void>((done) => (resolve = done));
  return {
    promise,
    resolve: (settledWith) => {
      value ??= settledWith;
      resolve();
    },
    get value() {
      return value;
    },
  };
}

/** Why the projection cannot build in a schema of its own, or null when it can. */
function buildableProblem(projection: Projection): string | null {
  try {
    assertScratchBuildable(projection);
    return null;
  } catch (error) {
    return errorMessage(error);
  }
}

/**
 * Drops the build of this projection's version, if there is one: its checkpoint rows, its
 * parked events and its schema, under its lock. A build of another version (a newer daemon's)
 * is left alone.
 */
export async function dropBuild(pool: pg.Pool, projection: Projection, timeoutMs: number): Promise<void> {
  const key = buildKey(projection.name);
  await inCancellableTransaction(pool, { timeoutMs }, async (client) => {
    await lockProjection(client, key);
    const { rows } = await client.query<{ others: boolean }>(
      `select exists (select 1 from ${CHECKPOINTS_TABLE} where projection = $1 and version <> $2) as others`,
      [key, projection.version],
    );
    if (!rows[0]!.others) {
      await client.query(`delete from ${CHECKPOINTS_TABLE} where projection = $1`, [key]);
      await client.query(`delete from ${FAILED_EVENTS_TABLE} where projection = $1`, [key]);
      await dropSchema(client, buildSchemaName(projection.name));
    }
    return { result: undefined, commit: true };
  });
}
