import type pg from 'pg';
import { UserError } from '../errors.js';
import type { Projection } from '../projection/types.js';
import {
  CHECKPOINT_MOVED_SQLSTATE,
  moveCheckpoint,
  resetCheckpoint,
  selectCheckpoint,
  type Checkpoint,
} from '../store/checkpoints.js';
import { cancelBackend } from '../store/cancelBackend.js';
import { isStalePlan, sqlstateOf } from '../store/classifyError.js';
import { checkOut } from '../store/connect.js';
import { lockProjection, tryLockPart, tryLockProjection, type PartLock } from '../store/locks.js';
import { WHOLE, type Part } from '../store/part.js';
import type { ProgressNotice } from '../store/progressNotice.js';
import type { Position } from '../store/position.js';
import { comparePositions, START } from '../store/position.js';
import { inOrder } from '../store/queryable.js';
import { searchPathSql } from '../store/scratchSchema.js';
import { MARK_BATCH_SQL } from '../store/snapshotGate.js';
import { armWakeup } from '../store/wakeup.js';
import { compareSelections, selectionOf } from '../store/selection.js';
import { sendEarlyRead, type EarlyRead } from './apply/earlyRead.js';
import { applyBatchInFlight, pickForm, type ApplyForm } from './apply/pickForm.js';
import { BatchFailure, BatchTimeoutError, EventFailure, handlerCause } from './batchErrors.js';
import { selectionMovedMessage } from './checkSelections.js';
import { createDeadline, type Deadline } from './deadline.js';
import { createHandlerDb } from './handlerDb.js';
import { parkFirstEvent, type Park } from './parkEvent.js';
import type { Prefetch } from './prefetch.js';

export { BatchFailure, BatchTimeoutError, EventFailure };
export type { ApplyForm, Park };

export interface RunBatchOptions {
  pool: pg.Pool;
  projection: Projection;
  batchSize: number;
  /** Past this many milliseconds the batch is cancelled, rolled back and counted as transient. */
  timeoutMs: number;
  /** Run handlers' parameterised statements as prepared statements. */
  preparedStatements: boolean;
  /**
   * Wait at commit for the batch's WAL to reach the disk. Off, a server crash can lose the last
   * batches committed, but only whole batches with their checkpoints, which are then applied
   * again: effects stay exactly-once. @defaultValue true
   */
  synchronousCommit?: boolean;
  /**
   * Instead of applying the next event, park it (or halt on it): it is the event at
   * `position`, which failed `attempts` times.
   */
  park?: Park;
  /**
   * Apply per event even though the projection has a batch form, when its per-event handlers
   * take every type it reads: the runner isolates a failing event this way.
   */
  perEvent?: boolean;
  /** The runner's read-ahead, for the forms that use it. */
  prefetch?: Prefetch;
  /** Told, after the commit, where a batch moved the checkpoint: for waiters (`ProgressAnnouncer`). */
  announce?: (notice: ProgressNotice) => void;
  /**
   * Where this runner's last pass left the checkpoint: the batch's read is sent from there with
   * the opening, in its round trip, and used when the checkpoint read under the lock is still
   * there (`EarlyRead`). For a runner that caught up, whose next batch is small: its round
   * trips are most of its time. Ignored with `park`.
   */
  readFrom?: Position;
  /** Of a split projection (`partitions`), the part this pass works on. @defaultValue the whole projection */
  part?: Part;
  /**
   * Arm the writers' wake-up before reading (`projd.arm_wakeup()`), for a pass after which the
   * runner may go idle: the result's `quiet` then says whether it may sleep until notified.
   */
  arm?: boolean;
  /**
   * Asked when the projection's checkpoint is of an older version (or another number of parts):
   * true leaves the old version in place, serving, while a blue/green build makes the new one
   * (`awaiting_build`); false rebuilds in place. @defaultValue in place
   */
  buildsBesideLive?: () => boolean;
  /**
   * Of a blue/green build: its schema, the live projection it will replace, and a check of each
   * handler statement before it is sent (one that names a schema would reach the live tables).
   */
  build?: { schema: string; live: string; assertStatement?: (text: string) => void };
}

/** What one pass did. Expected outcomes are values; only faults are thrown. */
export type BatchResult =
  | { kind: 'locked_elsewhere' }
  /**
   * Of a split projection: its lock was held exclusively for one transaction (another part's
   * set-up, a rebuild, a replay's reset, a failed-event retry), or this pass waited out another
   * part's set-up. Nothing applied; go again shortly.
   */
  | { kind: 'projection_busy' }
  /**
   * Of a split projection: this pass set the projection up (or rebuilt it) and committed that
   * alone, so that the other parts wait for the set-up only, not for this part's batch as well.
   * Go again at once.
   */
  | { kind: 'set_up'; setUp: 'created' | 'rebuilt' }
  /** The store holds a newer version of this projection, written by a newer daemon. */
  | { kind: 'version_ahead'; storedVersion: number }
  /** The live checkpoint is of an older version, left to serve while a blue/green build makes this one. */
  | { kind: 'awaiting_build'; storedVersion: number }
  /**
   * Of a blue/green build: the live projection is at this version (the build was swapped in)
   * or a newer one (a newer version's was): this build has nothing left to do.
   */
  | { kind: 'build_swapped'; liveVersion: number }
  /** Halted (`onError: stop`) on this failed event until it is retried or skipped. */
  | { kind: 'blocked'; failedEventId: bigint }
  /** The checkpoint moved under us despite the lock: rolled back, nothing applied. */
  | { kind: 'conflict'; expected: Position }
  | {
      kind: 'done';
      /** How the events were applied. */
      form: ApplyForm;
      /** Events handed to handlers and committed. */
      applied: number;
      /** Null when the checkpoint did not move (nothing new below the gate). */
      to: Position | null;
      /** The checkpoint after this pass, moved or not. */
      checkpoint: Position;
      full: boolean;
      heldBack: boolean;
      /** Set when this pass ran `setup`: `created` the first time, `rebuilt` after a version change. */
      setUp?: 'created' | 'rebuilt';
      /** Set when this pass parked an event, or halted the projection on it. */
      parked?: { id: bigint; position: bigint; policy: 'park' | 'stop' };
      /**
       * Of a pass that armed the wake-up: true when no writer was in flight that will not
       * notify, so a runner with nothing more to read may sleep until a notification; false
       * when one was, and it should look again soon. Absent when the pass did not arm.
       */
      quiet?: boolean;
    };

type DoneResult = Extract<BatchResult, { kind: 'done' }>;
/**
 * How a pass ends: roll back, commit, or move the checkpoint from `from` to `to` and commit,
 * behind the form's statements still in flight (`answered`).
 */
type Outcome = { commit: boolean; result: BatchResult; move?: { from: Position; to: Position }; answered?: () => Promise<void> };

/**
 * One batch as one transaction: lock the projection, read its checkpoint, apply the next
 * events through the snapshot gate in the fastest form the projection offers, and move the
 * checkpoint with a compare-and-swap. A crash at any point leaves the whole batch or none of it.
 * No savepoints: a failing event rolls the batch back and the runner isolates it.
 *
 * Round trips, on a pipelined connection: one to begin, lock and read the checkpoint (with
 * `readFrom`, the form's read rides along), the form's own (its read, each statement a handler
 * awaits), and a last one that carries the statements no handler awaited, the checkpoint's move
 * and the commit. Then, outside the transaction, `announce` tells waiters.
 */
export async function runBatch(options: RunBatchOptions): Promise<BatchResult> {
  const { pool, timeoutMs } = options;
  const { client, release } = await checkOut(pool);
  let backendPid: number | undefined;
  const deadline = createDeadline(timeoutMs, () => {
    // Cancels the statement in flight; the server-side timeouts below cover the rest.
    if (backendPid !== undefined) cancelBackend(pool, backendPid).catch(() => undefined);
  });
  let broken: Error | undefined;
  try {
    const opened = (opening: Opening) => (backendPid = opening.pid);
    const { commit, result, move, answered } = await runInTransaction(client, options, deadline, opened);
    if (move) {
      const moved = await moveAndCommit(client, options, move, answered);
      if (!moved) return { kind: 'conflict', expected: move.from };
      announceMove(options, move.to);
      return result;
    }
    await client.query(commit ? 'commit' : 'rollback');
    // Parking moved the checkpoint past the event: waiters hear of it as of any other move.
    if (commit && result.kind === 'done' && result.parked && result.to) announceMove(options, result.to);
    return result;
  } catch (error) {
    if (deadline.expired) {
      broken = new BatchTimeoutError(timeoutMs); // a handler may still hold the client: never reuse it
    } else if (isStalePlan(handlerCause(error))) {
      broken = error as Error; // its prepared statements are stale: a fresh connection prepares them anew
    } else {
      await client.query('rollback').catch((rollbackError: Error) => {
        broken = rollbackError; // the connection is unusable: do not return it to the pool
      });
    }
    const inHandler = error instanceof EventFailure || error instanceof BatchFailure;
    throw deadline.expired && !inHandler ? new BatchTimeoutError(timeoutMs) : error;
  } finally {
    deadline.clear();
    // Committed just as the deadline passed: its cancel may still reach the connection.
    release(broken ?? (deadline.expired ? new BatchTimeoutError(timeoutMs) : undefined));
  }
}

/** The steps of a batch, in order: lock, checkpoint, park or apply, move the checkpoint. */
async function runInTransaction(
  client: pg.PoolClient,
  options: RunBatchOptions,
  deadline: Deadline,
  opened: (opening: Opening) => void,
): Promise<Outcome> {
  const { projection, batchSize, park, preparedStatements, part = WHOLE } = options;
  const split = part.count > 1;
  const form = pickForm(projection, { perEvent: options.perEvent });
  const limit = park ? 1 : batchSize;
  // What the opening reads ahead for, when told where the checkpoint stands (`readFrom`).
  const firstRead = park ? undefined : { form, limit };
  let opening = await openTransaction(client, options, split ? 'part' : 'projection', firstRead);
  opened(opening);
  if (options.build && isSetUp(opening.live, projection, part)) {
    return { commit: false, result: { kind: 'build_swapped', liveVersion: opening.live.version } };
  }
  if (awaitsBuild(options, opening.checkpoint, part)) {
    return { commit: false, result: { kind: 'awaiting_build', storedVersion: opening.checkpoint!.version } };
  }
  // A part shares the projection's lock with the other parts, so it cannot set up or rebuild
  // under it: when its checkpoint says it must, it starts over and waits for the lock alone,
  // which excludes every part, and sets up in a transaction of its own. It does not take that
  // lock while holding the shared one: two parts doing so would deadlock.
  const setUpFirst = split && !isCurrent(options, opening.checkpoint, part);
  if (setUpFirst) {
    await client.query('rollback');
    opening = await openTransaction(client, options, 'wait');
    opened(opening);
  } else if (opening.lock === 'projection_taken') {
    return { commit: false, result: { kind: 'projection_busy' } };
  } else if (opening.lock !== 'locked') {
    return { commit: false, result: { kind: 'locked_elsewhere' } };
  }
  const ready = await readyCheckpoint(client, options, part, opening.checkpoint, { mayRebuild: !split || setUpFirst });
  if (ready.kind !== 'ready') return { commit: false, result: ready };
  if (setUpFirst) {
    // This part's batch runs beside the others under the shared lock, not under this one,
    // which holds them all back: set up, it commits that alone; set up by another part while
    // it waited, it leaves the lock at once.
    if (ready.setUp) return { commit: true, result: { kind: 'set_up', setUp: ready.setUp } };
    return { commit: false, result: { kind: 'projection_busy' } };
  }
  const { checkpoint, setUp } = ready;
  const done = { kind: 'done' as const, form, setUp, ...(opening.quiet === undefined ? {} : { quiet: opening.quiet }) };

  if (park) {
    const parked = await parkFirstEvent(client, projection, checkpoint, park, part);
    if (parked.kind === 'conflict') return { commit: false, result: parked };
    if (parked.kind === 'parked') {
      const { batch, id, policy } = parked;
      const to = policy === 'park' ? batch.scannedTo : null;
      const result: DoneResult = {
        ...done,
        full: batch.full,
        heldBack: batch.heldBack,
        applied: 0,
        to,
        checkpoint: to ?? checkpoint,
        parked: { id, position: park.position, policy },
      };
      return { commit: true, result };
    }
    // The event is no longer first (the store changed under us): apply as usual, one event.
  }

  const handlerDb = createHandlerDb(client, {
    prepare: preparedStatements,
    assertStatement: options.build?.assertStatement,
    assertUsable: () => {
      if (deadline.expired) throw new Error('the batch has timed out; this query was not sent');
    },
  });
  const prefetch = options.prefetch && { prefetch: options.prefetch, pool: options.pool, timeoutMs: options.timeoutMs };
  // The read sent with the opening is this batch's when the checkpoint was where it guessed.
  const sentEarly = opening.early && !setUp && comparePositions(opening.early.after, checkpoint) === 0 ? opening.early : undefined;
  const context = { client, projection, part, after: checkpoint, limit, prepared: preparedStatements, handlerDb, deadline, prefetch, early: sentEarly };
  const applied = await applyBatchInFlight(form, context);
  const { full, heldBack, scannedTo, answered } = applied;
  if (!scannedTo) {
    await answered?.();
    return { commit: setUp !== undefined, result: { ...done, full, heldBack, applied: 0, to: null, checkpoint } };
  }
  return {
    commit: true,
    move: { from: checkpoint, to: scannedTo },
    answered,
    result: { ...done, full, heldBack, applied: applied.applied, to: scannedTo, checkpoint: scannedTo },
  };
}

/** The start of a batch's transaction: the server's pid, whether it got the lock, the checkpoint then. */
interface Opening {
  pid: number | undefined;
  /** `taken`: another daemon runs the projection (or this part); `projection_taken`: a set-up, reset or retry holds the split projection's lock. */
  lock: PartLock | 'taken';
  checkpoint: Checkpoint | null;
  /** Of a blue/green build, the live projection's checkpoint (its part 0). */
  live: Checkpoint | null;
  /** Of a pass that armed the wake-up: no silent writer was in flight (see `RunBatchOptions.arm`). */
  quiet?: boolean;
  /** The batch's read, sent after the opening from `RunBatchOptions.readFrom`. */
  early?: EarlyRead;
}

/**
 * Begins the transaction, takes the lock and reads the checkpoint, sent together: one round
 * trip. The server runs them in order, so the checkpoint is read under the lock when it was
 * taken (and ignored when it was not). `lock`: the projection's lock without waiting, a part's
 * locks without waiting, or the projection's lock waiting for it. With `read` and `readFrom`,
 * the form's read of the batch goes last in the same round trip (`EarlyRead`).
 *
 * statement_timeout bounds each statement and the idle timeout a handler stuck between
 * statements, so a hung daemon cannot hold the projection's lock forever. Without
 * `synchronousCommit`, the commit does not wait for the disk: the batch holds its locks, and
 * the snapshot gate of every other projection, a flush shorter. The server's own
 * pid, not the client's: behind a transaction-mode pooler they differ, and the server
 * connection stays the same for the whole transaction.
 */
async function openTransaction(
  client: pg.PoolClient,
  options: RunBatchOptions,
  lock: 'projection' | 'part' | 'wait',
  read?: { form: ApplyForm; limit: number },
): Promise<Opening> {
  const { projection, timeoutMs, part = WHOLE, synchronousCommit = true, build } = options;
  const asynchronous = synchronousCommit ? '' : ' set local synchronous_commit = off;';
  // A build's unqualified names resolve in its schema only, for the whole transaction.
  const searchPath = build ? ` ${searchPathSql(build.schema)};` : '';
  const begun = client.query(
    `begin; set local statement_timeout = ${timeoutMs}; set local idle_in_transaction_session_timeout = ${timeoutMs};${asynchronous}${searchPath}
     ${MARK_BATCH_SQL}; select pg_backend_pid() as pid`,
  ) as unknown as Promise<pg.QueryResult<{ pid: number }>[]>;
  const locked: Promise<Opening['lock']> =
    lock === 'wait'
      ? lockProjection(client, projection.name).then(() => 'locked')
      : lock === 'part'
        ? tryLockPart(client, projection.name, part).then((got) => (got === 'part_taken' ? 'taken' : got))
        : tryLockProjection(client, projection.name).then((got) => (got ? 'locked' : 'taken'));
  const prepared = { prepared: options.preparedStatements };
  const checkpoint = selectCheckpoint(client, projection.name, part.index, prepared);
  const live = build ? selectCheckpoint(client, build.live, 0, prepared) : Promise.resolve(null);
  // Before every read of this batch: each statement reads a snapshot of its own, taken later.
  const armed = options.arm ? armWakeup(client) : Promise.resolve(undefined);
  // Last, so that it reads after the lock, and after the arming as every read of the batch must.
  const { readFrom } = options;
  const scan = readFrom && { after: readFrom, eventTypes: projection.eventTypes, part, ...prepared };
  const early = read && scan && lock !== 'wait' ? sendEarlyRead(client, read.form, { ...scan, limit: read.limit }) : undefined;
  const [started, gotLock, checkpointRead, liveRead, quiet] = await inOrder(begun, locked, checkpoint, live, armed);
  return { pid: started.at(-1)?.rows[0]?.pid, lock: gotLock, checkpoint: checkpointRead, live: liveRead, quiet, early };
}

/**
 * Moves the checkpoint and commits, sent together, behind the form's statements still in
 * flight: the batch's last round trip. A statement that failed aborted the transaction, so the
 * move fails behind it and the commit rolls back: `answered` throws the form's failure. When the
 * checkpoint moved under the batch, the move fails, the commit rolls back, and this returns
 * false. Whatever the client saw of the answers, the commit's own answer says what the server did.
 */
async function moveAndCommit(
  client: pg.PoolClient,
  options: RunBatchOptions,
  { from, to }: { from: Position; to: Position },
  answered: () => Promise<void> = async () => undefined,
): Promise<boolean> {
  const { projection, part = WHOLE, preparedStatements } = options;
  const moved = moveCheckpoint(client, projection.name, from, to, part.index, { prepared: preparedStatements });
  const committed = client.query('commit');
  const [applied, move, commit] = await Promise.allSettled([answered(), moved, committed]);
  // COMMIT, not ROLLBACK: every statement of the batch ran, and the read model and the
  // checkpoint landed together. A failure the client saw after that (an answer it could not
  // parse) changes nothing the server did.
  if (commit.status === 'fulfilled' && commit.value.command === 'COMMIT') return true;
  if (applied.status === 'rejected') throw applied.reason;
  if (move.status === 'rejected') {
    if (sqlstateOf(move.reason) === CHECKPOINT_MOVED_SQLSTATE) return false;
    throw move.reason;
  }
  if (commit.status === 'rejected') throw commit.reason;
  throw new Error(`the batch's commit rolled back (${commit.value.command}) with no statement failing`);
}

/** A committed batch moved the checkpoint to `to`: tell waiters, after the commit (see `ProgressAnnouncer`). */
function announceMove(options: RunBatchOptions, to: Position): void {
  const { projection, part = WHOLE } = options;
  options.announce?.({ projection: projection.name, part: part.index, parts: part.count, checkpoint: to });
}

type ReadyCheckpoint =
  | { kind: 'ready'; checkpoint: Checkpoint; setUp?: 'created' | 'rebuilt' }
  | Extract<BatchResult, { kind: 'version_ahead' | 'blocked' | 'locked_elsewhere' | 'awaiting_build' }>;

/**
 * The checkpoint to go on from, after setting the projection up (first run) or rebuilding it
 * (a new version), unless a newer daemon owns it or it is halted on a failed event.
 */
async function readyCheckpoint(
  client: pg.PoolClient,
  options: RunBatchOptions,
  part: Part,
  read: Checkpoint | null,
  { mayRebuild }: { mayRebuild: boolean },
): Promise<ReadyCheckpoint> {
  const { projection } = options;
  let checkpoint = read;
  let setUp: 'created' | 'rebuilt' | undefined;
  if (checkpoint && checkpoint.version > projection.version) {
    return { kind: 'version_ahead', storedVersion: checkpoint.version };
  }
  const selection = selectionOf(projection);
  if (!isCurrent(options, checkpoint, part)) {
    // Set up by another daemon with another number of parts since the unlocked look: next pass.
    if (!mayRebuild) return { kind: 'locked_elsewhere' };
    // A rebuild tears down (reset) before building up (setup), so a reset that drops a
    // table and a setup that creates it again both work. Part 0 has a row whenever any part has.
    const existing = checkpoint ?? (part.count > 1 ? await selectCheckpoint(client, projection.name, 0) : null);
    // A part added by a new number of parts finds part 0's row: the old version, which serves on.
    if (existing && awaitsBuild(options, existing, part)) return { kind: 'awaiting_build', storedVersion: existing.version };
    if (existing) for (const sql of projection.reset) await client.query(sql);
    for (const sql of projection.setup) await client.query(sql);
    await resetCheckpoint(client, projection.name, projection.version, selection, part.count);
    setUp = existing ? 'rebuilt' : 'created';
    checkpoint = { version: projection.version, blockedBy: null, selection, parts: part.count, ...START };
  }
  // A replay with other handlers moved the selection since this daemon started: applying on
  // with these would skip the events of types they lack. Refused, pass after pass, until restart.
  const selectionChange = compareSelections(checkpoint.selection, selection);
  if (selectionChange) throw new UserError(selectionMovedMessage(projection.name, selectionChange));
  if (checkpoint.blockedBy !== null) return { kind: 'blocked', failedEventId: checkpoint.blockedBy };
  return { kind: 'ready', checkpoint, setUp };
}

/** An older version (or another number of parts) serves, and the new one is built beside it rather than in place. */
function awaitsBuild(options: RunBatchOptions, checkpoint: Checkpoint | null, part: Part): boolean {
  if (!checkpoint || checkpoint.version > options.projection.version) return false;
  return !isSetUp(checkpoint, options.projection, part) && (options.buildsBesideLive?.() ?? false);
}

/**
 * Whether the part goes on from its checkpoint, or sets up first. A build also starts over
 * when its handlers read other types than it was started with (code changed at the same
 * version): it serves no one yet, so it is rebuilt rather than refused.
 */
function isCurrent(options: RunBatchOptions, checkpoint: Checkpoint | null, part: Part): checkpoint is Checkpoint {
  if (!isSetUp(checkpoint, options.projection, part)) return false;
  if (!options.build || checkpoint.version !== options.projection.version) return true;
  return compareSelections(checkpoint.selection, selectionOf(options.projection)) === null;
}

/**
 * False when the part has no checkpoint yet, or one of an older version, or one set up with
 * another number of parts: this pass sets the projection up, or rebuilds it from the start.
 */
function isSetUp(checkpoint: Checkpoint | null, projection: Projection, part: Part): checkpoint is Checkpoint {
  if (!checkpoint || checkpoint.version < projection.version) return false;
  return checkpoint.version > projection.version || checkpoint.parts === part.count;
}
