import { RETRY_CAP_MS, type RunnerSnapshot } from '../runner/createRunner.js';

export interface LivenessOptions {
  /** `Date.now()` at the check. */
  now: number;
  /** `health.stuckAfter`, in ms. */
  stuckAfter: number;
  /** `projections.pollInterval`, in ms: how long a loop with nothing to do may wait. */
  pollInterval: number;
}

/**
 * The loops that look dead, each with the reason, for `/healthz`: one whose loop ended, one
 * whose batch has run for longer than `stuckAfter` (a hung handler, a pool that hands out no
 * connection), or one that has not come back from a wait `stuckAfter` past its longest wait.
 */
export function findStuckLoops(snapshots: readonly RunnerSnapshot[], options: LivenessOptions): string[] {
  const stuck: string[] = [];
  for (const snapshot of snapshots) {
    const idleMs = options.now - snapshot.lastPassAt;
    if (snapshot.state === 'stopped') {
      stuck.push(`${snapshot.name}: loop ended`);
    } else if (snapshot.inBatch && idleMs > options.stuckAfter) {
      stuck.push(`${snapshot.name}: batch running for ${Math.round(idleMs / 1000)}s`);
    } else if (!snapshot.inBatch && idleMs > options.stuckAfter + Math.max(options.pollInterval, RETRY_CAP_MS)) {
      stuck.push(`${snapshot.name}: no pass for ${Math.round(idleMs / 1000)}s`);
    }
  }
  return stuck;
}

/** The projections that have not caught up once yet, for `/readyz`. */
export function findNotCaughtUp(snapshots: readonly RunnerSnapshot[]): string[] {
  return snapshots
    .filter((snapshot) => !snapshot.caughtUpOnce && snapshot.state !== 'version_ahead')
    .map((snapshot) => snapshot.name);
}

/**
 * The projections whose stored version is newer than this daemon's module, for `/readyz`: it
 * leaves them alone, so it will not be ready until it runs the newer code (a caught-up state
 * from before a newer daemon rebuilt them no longer counts).
 */
export function findVersionBehind(snapshots: readonly RunnerSnapshot[]): string[] {
  return snapshots
    .filter((snapshot) => snapshot.state === 'version_ahead')
    .map((snapshot) => `${snapshot.name} (version ${snapshot.version})`);
}
