import { UserError } from '../errors.js';
import { comparePositions, type Position } from '../store/position.js';
import { parseProgressNotice, type ProgressNotice } from '../store/progressNotice.js';
import type { Queryable } from '../store/queryable.js';
import { readWaitState, type WaitState } from '../store/readWaitState.js';

/** Wait until every one of `projections` has applied, or passed, the event at `position`. */
export interface WaitRequest {
  projections: readonly string[];
  position: bigint;
  timeoutMs: number;
  /** Aborting it ends the wait as `aborted`: a client that went away. */
  signal?: AbortSignal;
  /** Read this wait's checks as a prepared statement, whatever the waiters' `prepared` says. */
  prepared?: boolean;
}

/** A projection not there yet when the wait timed out. */
export interface ProjectionBehind {
  projection: string;
  /** The part that owns the event's stream (0 when not split). */
  part: number;
  /** Its checkpoint as last seen; null when it has none yet. */
  checkpoint: Position | null;
}

export type WaitOutcome =
  | { kind: 'applied'; position: bigint; projections: readonly string[]; waitedMs: number }
  /** `visible`: false when the event itself was not committed (or never will be) by then. */
  | { kind: 'timed_out'; position: bigint; behind: ProjectionBehind[]; visible: boolean; waitedMs: number }
  | { kind: 'aborted' }
  /** The waiters were closed (the daemon stops, the library's listener closes). */
  | { kind: 'closed' };

export interface ProgressWaitersOptions {
  /** Where the one check per wait (and each re-check) reads the event and the checkpoints. */
  db: Queryable;
  /**
   * A projection with no checkpoint in the store: `error`, a `UserError` naming it (the
   * library, the CLI), or `wait` for it (the daemon, whose own projections set up as it starts).
   */
  missingProjection: 'error' | 'wait';
  /**
   * Read as a prepared statement (the daemon's `database.preparedStatements`); not on a pool
   * that is not projd's, whose pooler may not keep one, unless a wait asks for it. @defaultValue false
   */
  prepared?: boolean;
  /** @defaultValue `Date.now` */
  now?: () => number;
}

export interface ProgressWaiters {
  /**
   * Resolves when every projection has applied or passed the event, or at the timeout.
   * Call it once LISTEN on `projd_progress` is in place: it checks once with a query, then
   * only on notices. Rejects with a `UserError` for a position above the head, or an unknown
   * projection (see `missingProjection`); with the query's error if a check fails.
   */
  wait(request: WaitRequest): Promise<WaitOutcome>;
  /** A payload on `projd_progress`. */
  notice(payload: string): void;
  /** Notices may have been lost (the listener reconnected): every waiter looks again. */
  recheck(): void;
  /** Waits in progress. */
  size(): number;
  /** Ends every wait in progress, and every later one, as `closed`. */
  close(): void;
}

/** Where one projection stands for one waiter. */
interface Standing {
  part: number;
  /** 0 while the projection has no checkpoint: any notice of it brings a re-check. */
  parts: number;
  checkpoint: Position | null;
}

interface Waiter {
  request: WaitRequest;
  startedAt: number;
  /** The event's place, once visible. */
  target: Position | null;
  /** The projections not there yet. */
  behind: Map<string, Standing>;
  /** Notices that arrived while a check was in flight, applied after it; null when none is. */
  heldNotices: ProgressNotice[] | null;
  /** A notice asked for another check while one was in flight. */
  checkAgain: boolean;
  settle(outcome: WaitOutcome | { error: unknown }): void;
}

/**
 * The waits on projections' progress, fed by `projd_progress` notices. Waiters share whoever
 * feeds them (the daemon's listener, or one subscriber per pool in the library): none of them
 * polls. Each waiter queries once after LISTEN is in place, and again only when a notice cannot
 * be compared without it (its event was not visible yet, the projection was split anew) or
 * notices may have been lost.
 */
export function createProgressWaiters(options: ProgressWaitersOptions): ProgressWaiters {
  const { db, missingProjection, prepared = false, now = Date.now } = options;
  const waiters = new Set<Waiter>();
  let closed = false;

  /** Reads the state and takes it in; checks again as long as notices during a read ask for it. */
  async function check(waiter: Waiter): Promise<void> {
    if (waiter.heldNotices) {
      waiter.checkAgain = true;
      return;
    }
    try {
      do {
        waiter.checkAgain = false;
        waiter.heldNotices = [];
        const state = await readWaitState(db, waiter.request.position, waiter.request.projections, {
          prepared: waiter.request.prepared ?? prepared,
        });
        if (!waiters.has(waiter)) return;
        takeState(waiter, state);
        for (const notice of waiter.heldNotices) {
          if (compareNotice(waiter, notice) === 'check') waiter.checkAgain = true;
        }
      } while (waiter.checkAgain && waiters.has(waiter));
    } catch (error) {
      waiter.settle({ error });
    } finally {
      waiter.heldNotices = null;
    }
    settleIfApplied(waiter);
  }

  function takeState(waiter: Waiter, state: WaitState): void {
    const { position } = waiter.request;
    if (!state.target && state.head !== null && position > state.head) {
      throw new UserError(`position ${position} is above the store's head (${state.head}): no event has it yet`);
    }
    waiter.target = state.target;
    waiter.behind.clear();
    for (const { projection, checkpoint } of state.checkpoints) {
      if (!checkpoint && missingProjection === 'error') {
        throw new UserError(`unknown projection '${projection}': the store has no checkpoint of that name (has a daemon run it?)`);
      }
      if (checkpoint && state.target && comparePositions(checkpoint, state.target) >= 0) continue;
      const standing = checkpoint
        ? { part: checkpoint.part, parts: checkpoint.parts, checkpoint: { era: checkpoint.era, transactionId: checkpoint.transactionId, position: checkpoint.position } }
        : { part: 0, parts: 0, checkpoint: null };
      waiter.behind.set(projection, standing);
    }
  }

  /** A notice while no check is in flight: compared at once, or it brings a check. */
  function takeNotice(waiter: Waiter, notice: ProgressNotice): void {
    if (!waiter.behind.has(notice.projection)) return;
    if (waiter.heldNotices) {
      waiter.heldNotices.push(notice);
      return;
    }
    if (compareNotice(waiter, notice) === 'check') void check(waiter);
    else settleIfApplied(waiter);
  }

  /**
   * Compares a notice with the waiter's event: a projection whose checkpoint reached it is no
   * longer behind. `check` when it cannot compare without a query: the event was not visible
   * yet, or the projection has another number of parts than the waiter knew.
   */
  function compareNotice(waiter: Waiter, notice: ProgressNotice): 'compared' | 'check' {
    const standing = waiter.behind.get(notice.projection);
    if (!standing) return 'compared';
    if (!waiter.target || standing.parts !== notice.parts) return 'check';
    if (standing.part !== notice.part) return 'compared';
    standing.checkpoint = notice.checkpoint;
    if (comparePositions(notice.checkpoint, waiter.target) >= 0) waiter.behind.delete(notice.projection);
    return 'compared';
  }

  function settleIfApplied(waiter: Waiter): void {
    if (waiter.behind.size > 0 || waiter.heldNotices || !waiters.has(waiter)) return;
    const { position, projections } = waiter.request;
    waiter.settle({ kind: 'applied', position, projections, waitedMs: now() - waiter.startedAt });
  }

  return {
    wait(request) {
      return new Promise<WaitOutcome>((resolve, reject) => {
        const { signal } = request;
        if (signal?.aborted) return resolve({ kind: 'aborted' });
        if (closed) return resolve({ kind: 'closed' });
        const waiter: Waiter = {
          request,
          startedAt: now(),
          target: null,
          // Behind until the first check says otherwise.
          behind: new Map(request.projections.map((projection) => [projection, { part: 0, parts: 0, checkpoint: null }])),
          heldNotices: null,
          checkAgain: false,
          settle(outcome) {
            if (!waiters.delete(waiter)) return;
            clearTimeout(timer);
            signal?.removeEventListener('abort', onAbort);
            if ('error' in outcome) reject(outcome.error);
            else resolve(outcome);
          },
        };
        const timer = setTimeout(() => {
          const behind = [...waiter.behind].map(([projection, { part, checkpoint }]) => ({ projection, part, checkpoint }));
          const visible = waiter.target !== null;
          waiter.settle({ kind: 'timed_out', position: request.position, behind, visible, waitedMs: now() - waiter.startedAt });
        }, request.timeoutMs);
        const onAbort = () => waiter.settle({ kind: 'aborted' });
        signal?.addEventListener('abort', onAbort, { once: true });
        waiters.add(waiter);
        void check(waiter);
      });
    },
    notice(payload) {
      if (waiters.size === 0) return;
      const notice = parseProgressNotice(payload);
      if (!notice) return;
      for (const waiter of waiters) takeNotice(waiter, notice);
    },
    recheck() {
      for (const waiter of waiters) void check(waiter);
    },
    size: () => waiters.size,
    close() {
      closed = true;
      for (const waiter of waiters) waiter.settle({ kind: 'closed' });
    },
  };
}
