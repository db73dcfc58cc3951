import { PROJECTION_STATES, type ProjectionState } from '../projectionStates.js';

/** What the tables say about one projection. */
export interface StateEvidence {
  /** It has a checkpoint row: a daemon has set it up. */
  hasCheckpoint: boolean;
  /** The loaded version is newer than its checkpoint's: the next daemon to run it rebuilds it. */
  rebuildPending: boolean;
  /** Its checkpoint names the failed event it stopped at (`blocked_by`). */
  blocked: boolean;
  /** Its oldest unapplied event lies above the snapshot gate. */
  heldBack: boolean;
  /** At most how long, in ms, that event has waited there; 0 when not held back. */
  heldBackMs: number;
  /** `health.stallAfter`, in ms: held back longer than this, it is stalled. */
  stallAfterMs: number;
  /** Committed events of its types not applied yet; 0 exactly when there are none. */
  lagEvents: bigint;
  /** A session holds its lock right now: a daemon is in the middle of a batch. */
  owned: boolean;
  /** Milliseconds since its checkpoint last moved, by the server's clock; null without one. */
  sinceUpdateMs: number | null;
  /**
   * A checkpoint that moved this recently counts as a daemon at work, between two batches
   * (the lock is only held during a batch).
   */
  activeWithinMs: number;
  /** Milliseconds since a daemon recorded a failed pass on its checkpoint; null without one. */
  sinceErrorMs: number | null;
}

/**
 * A failed pass recorded this recently counts as a daemon at work, retrying: a runner retries
 * at least every 30 s (its backoff cap), holds the lock while it does, and records each failure.
 */
export const RETRYING_WITHIN_MS = 60_000;

/**
 * The state of one projection. The order of the checks is the order of precedence: a pending
 * rebuild throws the checkpoint away, so what it says does not count; a blocked projection is
 * `failed` whatever else holds, a held-back one `stalled` even while a daemon waits on it,
 * since in both cases it will not move until someone acts. Held back for less than
 * `stallAfterMs`, it is what it would be otherwise: commits in flight hold events back all the time.
 */
export function deriveState(evidence: StateEvidence): ProjectionState {
  if (evidence.rebuildPending) return evidence.owned ? PROJECTION_STATES.catchingUp : PROJECTION_STATES.stopped;
  if (evidence.blocked) return PROJECTION_STATES.failed;
  if (!evidence.hasCheckpoint) return evidence.owned ? PROJECTION_STATES.catchingUp : PROJECTION_STATES.stopped;
  if (evidence.heldBack && evidence.heldBackMs > evidence.stallAfterMs) return PROJECTION_STATES.stalled;
  if (evidence.lagEvents === 0n) return PROJECTION_STATES.live;
  const recentlyMoved = evidence.sinceUpdateMs !== null && evidence.sinceUpdateMs <= evidence.activeWithinMs;
  const retrying = evidence.sinceErrorMs !== null && evidence.sinceErrorMs <= RETRYING_WITHIN_MS;
  if (evidence.owned || recentlyMoved || retrying) return PROJECTION_STATES.catchingUp;
  return PROJECTION_STATES.stopped;
}
