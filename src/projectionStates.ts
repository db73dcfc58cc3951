// A leaf module, importable from anywhere: the one vocabulary of projection states. The
// runner's state (in the daemon's log, `/metrics` and `/readyz`) and the state `projd status`
// derives from the tables name the same things with the same words.

/** Every state a projection can be in, each named once. */
export const PROJECTION_STATES = {
  // The contract's five: `projd status`, `--check` and `/metrics` report these.

  /**
   * Applying a backlog: full batches, as fast as it can. From the tables: a daemon holds the
   * lock now, moved the checkpoint just now, or is retrying a failed pass.
   */
  catchingUp: 'catching_up',
  /** Every committed event of its types (below the snapshot gate) is applied; waiting for a wake-up. */
  live: 'live',
  /**
   * Its next event has waited longer than `health.stallAfter` behind an older transaction that
   * is still open. Held back for less, it stays `live` or `catching_up`: a commit in flight.
   */
  stalled: 'stalled',
  /** It stopped at an event it cannot apply (`onError: stop`) until it is retried or skipped. */
  failed: 'failed',
  /**
   * Nothing is applying it: the runner stopped; or, from the tables, events wait and no daemon
   * applies them, no daemon has set it up yet, or its version was bumped and no daemon has
   * rebuilt it yet.
   */
  stopped: 'stopped',

  // Only a running daemon's runner knows these.

  /** The runner has not finished its first pass yet. */
  starting: 'starting',
  /** Another daemon holds this projection's lock; this one stands by to take over. */
  standby: 'standby',
  /** The store has a newer version of this projection: left to the newer daemon. */
  versionAhead: 'version_ahead',
  /**
   * The store has an older version, which serves while a blue/green build makes this one beside
   * it; this version takes over at the swap.
   */
  building: 'building',
  /** The last pass failed; retrying with backoff. */
  retrying: 'retrying',
} as const;

/** A state a daemon's runner can be in: any of them. */
export type RunnerState = (typeof PROJECTION_STATES)[keyof typeof PROJECTION_STATES];

/** The states `projd status` and `/metrics` report, in the order docs and metrics list them. */
export const PROJECTION_STATE_LIST = [
  PROJECTION_STATES.catchingUp,
  PROJECTION_STATES.live,
  PROJECTION_STATES.stalled,
  PROJECTION_STATES.failed,
  PROJECTION_STATES.stopped,
] as const;

/** A state `projd status` reports (the contract's five). */
export type ProjectionState = (typeof PROJECTION_STATE_LIST)[number];
