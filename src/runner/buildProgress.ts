import type { Logger } from '../log.js';

/** How often a daemon building a projection logs how far it got. */
const PROGRESS_EVERY_MS = 5_000;

export interface BuildProgress {
  /** Books a committed batch; `setUp` starts a build (first run or version rebuild). */
  committed(result: { applied: number; setUp?: 'created' | 'rebuilt' }): void;
  /** The projection caught up: a build in progress is done, and its rate is logged. */
  caughtUp(): void;
}

/**
 * A daemon that sets a projection up or rebuilds it (a version bump, a change of `partitions`)
 * replays the store into it, as `projd replay` does: it logs `build.progress` every 5 s and
 * `build.done` with the events applied and their rate once it has caught up.
 */
export function createBuildProgress(logger: Logger): BuildProgress {
  let build: { kind: 'created' | 'rebuilt'; startedAt: number; events: number; loggedAt: number } | null = null;
  const rateOf = (events: number, ms: number) => (ms > 0 ? Math.round(events / (ms / 1000)) : 0);

  return {
    committed({ applied, setUp }) {
      const now = performance.now();
      if (setUp) build = { kind: setUp, startedAt: now, events: 0, loggedAt: now };
      if (!build) return;
      build.events += applied;
      if (now - build.loggedAt >= PROGRESS_EVERY_MS) {
        build.loggedAt = now;
        const ms = now - build.startedAt;
        logger.info({ setUp: build.kind, events: build.events, rate: rateOf(build.events, ms) }, 'build.progress');
      }
    },
    caughtUp() {
      if (!build) return;
      const ms = performance.now() - build.startedAt;
      logger.info(
        { setUp: build.kind, events: build.events, ms: Math.round(ms), rate: rateOf(build.events, ms) },
        `build.done: ${build.events} events in ${(ms / 1000).toFixed(1)} s (${rateOf(build.events, ms)} events/s)`,
      );
      build = null;
    },
  };
}
