import { RETRY_CAP_MS, type RunnerSnapshot } from '../runner/createRunner.js';
import { partLabel } from '../store/part.js';

/** `balances`, or `balances part 2/4` for a runner of one part of a split projection. */
function labelOf(snapshot: RunnerSnapshot): string {
  return snapshot.part ? `${snapshot.name} part ${partLabel(snapshot.part)}` : snapshot.name;
}

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
      stuck.push(`${labelOf(snapshot)}: loop ended`);
    } else if (snapshot.inBatch && idleMs > options.stuckAfter) {
      stuck.push(`${labelOf(snapshot)}: batch running for ${Math.round(idleMs / 1000)}s`);
    } else if (!snapshot.inBatch && idleMs > options.stuckAfter + Math.max(options.pollInterval, RETRY_CAP_MS)) {
      stuck.push(`${labelOf(snapshot)}: no pass for ${Math.round(idleMs / 1000)}s`);
    }
  }
  return stuck;
}

/** The projections that have not caught up once yet, for `/readyz`. */
export function findNotCaughtUp(snapshots: readonly RunnerSnapshot[]): string[] {
  return snapshots
    .filter((snapshot) => !snapshot.caughtUpOnce && snapshot.state !== 'version_ahead')
    .map(labelOf);
}

/**
 * The projections whose stored version is newer than this daemon's module, for `/readyz`: it
 * leaves them alone, so it will not be ready until it runs the newer code (a caught-up state
 * from before a newer daemon rebuilt them no longer counts).
 */
export function findVersionBehind(snapshots: readonly RunnerSnapshot[]): string[] {
  return snapshots
    .filter((snapshot) => snapshot.state === 'version_ahead')
    .map((snapshot) => `${labelOf(snapshot)} (version ${snapshot.version})`);
}
