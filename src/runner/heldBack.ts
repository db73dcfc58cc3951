import type { Position } from '../store/position.js';

// While events are held back by an older open transaction, look again after 20 ms, doubling up
// to 100 ms: nothing notifies when that transaction ends, and a pass that finds nothing new is
// a few index lookups. A pass that moves the checkpoint starts over at 20 ms.
const HELD_BACK_FIRST_MS = 20;
const HELD_BACK_CAP_MS = 100;

export interface HeldBack {
  /** Books a committed pass: whether it found events held back, and whether it moved. */
  track(result: { heldBack: boolean; to: Position | null }): void;
  /** How soon to look again while held back, at most `pollInterval`. */
  nextDelay(pollInterval: number): number;
  /** Held back, with none released, for longer than `stallAfter`. */
  readonly stalled: boolean;
}

/** Events held back behind an open transaction: how long, and how soon to look again. */
export function createHeldBack({ stallAfter }: { stallAfter: number }): HeldBack {
  let delay = HELD_BACK_FIRST_MS;
  /**
   * Since when passes have found events held back and released none: the oldest of those has
   * waited at least this long, a bound from below (it had committed, and is still behind the
   * gate). Null while nothing is held back.
   */
  let since: number | null = null;

  return {
    track({ heldBack, to }) {
      if (!heldBack) {
        since = null;
        delay = HELD_BACK_FIRST_MS;
        return;
      }
      if (to !== null || since === null) since = Date.now();
      if (to !== null) delay = HELD_BACK_FIRST_MS; // it moved: what held it back may be gone
    },
    nextDelay(pollInterval) {
      const wait = Math.min(delay, pollInterval);
      delay = Math.min(delay * 2, HELD_BACK_CAP_MS);
      return wait;
    },
    get stalled() {
      return since !== null && Date.now() - since > stallAfter;
    },
  };
}
