import type { Projection } from '../projection/types.js';
import {
  readProgress,
  type CheckpointState,
  type OpenTransaction,
  type PartProgress,
  type Progress,
} from '../store/progress.js';
import type { Queryable } from '../store/queryable.js';
import { compareSelections, describeSelectionChange, selectionOf } from '../store/selection.js';
import { PROJECTION_STATES, type ProjectionState } from '../projectionStates.js';
import { deriveState } from './deriveState.js';
import { buildKey, buildSchemaName, buildsUnderWay, isBuildKey, liveNameOf } from '../store/buildSchema.js';

/** The session holding a projection's lock at the moment `status` looked. */
export interface ProjectionOwner {
  pid: number;
  /** `projd batch <host>:<pid>` for a daemon in a batch (`projd daemon …` otherwise). */
  applicationName: string | null;
}

/** The open transaction holding committed events back, as `status` names it. */
export interface BlockingTransaction {
  /** Null for a prepared transaction, which belongs to no session. */
  pid: number | null;
  database: string | null;
  user: string | null;
  applicationName: string | null;
  /** `idle in transaction`, `active`, …, or `prepared`. */
  state: string | null;
  /** ISO 8601. */
  transactionStartedAt: string | null;
  /** Seconds since the transaction started, by the server's clock. */
  transactionAgeSeconds: number;
  /** ISO 8601. */
  queryStartedAt: string | null;
  /** Its current or last statement, on one line, cut to 120 characters. */
  query: string | null;
}

/**
 * One projection in `projd status --json`. 64-bit values are decimal strings, dates ISO 8601,
 * so that the object goes through `JSON.stringify` as it is.
 */
export interface ProjectionStatus {
  name: string;
  /** The version of the loaded module. */
  version: number;
  /** The version in its checkpoint row; null before a daemon set it up. */
  storedVersion: number | null;
  /**
   * `version` is newer than `storedVersion`: no daemon has run this version yet, and the next
   * one to start with it rebuilds the projection from the start (a running daemon goes on with
   * the version it loaded).
   */
  rebuildPending: boolean;
  /**
   * What is wrong besides its state, for someone to act on (`--check` fails on it): its
   * checkpoint was written by a newer version, or its handlers read other event types than
   * its checkpoint was built with at this version. Null when nothing is.
   */
  problem: string | null;
  state: ProjectionState;
  /** Global position of the last event its checkpoint passed; `'0'` before the first. */
  position: string;
  headPosition: string;
  /** 0 when caught up, else an estimate from positions that is at least 1. */
  lagEvents: string;
  /** Age of its oldest unapplied event; 0 when caught up. */
  lagSeconds: number;
  /** Its parked events in `projd.failed_events`. */
  failedEvents: number;
  /** When its checkpoint last moved; null before a daemon set it up. */
  updatedAt: string | null;
  /** Who holds its lock at this moment; usually null between batches. */
  owner: ProjectionOwner | null;
  /** The failed event it stopped at (`projd.failed_events.id`), when `failed`. */
  blockedBy: string | null;
  lastError: string | null;
  lastErrorAt: string | null;
  /** The transaction holding it back, when `stalled` and visible to this database role. */
  stalledBy: BlockingTransaction | null;
  /**
   * The blue/green build of a newer version, while it runs beside this one (see
   * docs/rebuilds.md); null when there is none. Its fields are a projection's, for the version
   * being built; `state` is `catching_up` while it builds and `live` once it has caught up,
   * before the swap.
   */
  build: BuildStatus | null;
  /**
   * Only for a projection split into parts (`partitions` above 1): each part, in order. The
   * fields above are then the parts' together: `position` that of the part furthest behind,
   * `lagEvents` and `lagSeconds` those of the part most behind, `state` the parts' states
   * taken together as for one projection (any part halted: `failed`, and so on).
   */
  parts?: PartStatus[];
}

/** A blue/green build in `projd status --json`: the version being built beside the live one. */
export type BuildStatus = Pick<
  ProjectionStatus,
  | 'version'
  | 'state'
  | 'position'
  | 'lagEvents'
  | 'lagSeconds'
  | 'failedEvents'
  | 'updatedAt'
  | 'owner'
  | 'blockedBy'
  | 'lastError'
  | 'lastErrorAt'
  | 'parts'
> & {
  /** The schema it builds in. */
  schema: string;
};

/** One part of a split projection in `projd status --json`, its fields as a projection's. */
export interface PartStatus {
  /** 0 to `partitions - 1`: the streams for which `projd.stream_part(stream_id, partitions)` is this. */
  part: number;
  state: ProjectionState;
  position: string;
  lagEvents: string;
  lagSeconds: number;
  updatedAt: string | null;
  owner: ProjectionOwner | null;
  blockedBy: string | null;
  lastError: string | null;
  lastErrorAt: string | null;
}

/** Everything `status` and `/metrics` show. */
export interface StatusReport {
  /** When the server read it. */
  readAt: string;
  headPosition: string;
  /**
   * The oldest open transaction while committed events (of any type) wait behind it; null
   * when none do, or when this database role cannot see it.
   */
  heldBackBy: BlockingTransaction | null;
  projections: ProjectionStatus[];
}

export interface StatusOptions {
  /** The daemon's `projections.pollInterval`, in ms: a checkpoint moved within two counts as at work. */
  pollInterval: number;
  /** `health.stallAfter`, in ms: an event held back longer than this makes its projection stalled. */
  stallAfter: number;
}

/** Reads progress and derives each projection's state, in one statement. */
export async function readStatusReport(
  db: Queryable,
  projections: readonly Projection[],
  options: StatusOptions,
): Promise<StatusReport> {
  // A build's checkpoint is read as a projection's own, under its key.
  const building = await buildsUnderWay(db, projections.map((projection) => projection.name));
  const builds = projections
    .filter((projection) => building.has(projection.name))
    .map((projection) => ({ ...projection, name: buildKey(projection.name) }));
  // The live checkpoint of a projection being built is the older version, serving: its lag counts from there.
  const live = projections.map((projection) => ({ ...projection, serving: building.has(projection.name) }));
  const progress = await readProgress(db, [...live, ...builds]);
  return toStatusReport(progress, [...projections, ...builds], options);
}

/** The report for `progress`: a pure function of it, the loaded projections and the options. */
export function toStatusReport(
  progress: Progress,
  projections: readonly (Pick<Projection, 'name' | 'version' | 'eventTypes'> & { partitions?: number })[],
  options: StatusOptions,
): StatusReport {
  const readAt = progress.readAt.getTime();
  const heldBackBy = progress.heldBackBy && blockingTransaction(progress.heldBackBy, readAt);
  const headPosition = progress.headPosition.toString();
  // Of a projection with a build under way, the live checkpoint is the older version serving.
  const serving = new Set(projections.filter((projection) => isBuildKey(projection.name)).map((build) => liveNameOf(build.name)));
  const all = progress.projections.map((found, i) => {
    const projection = projections[i]!;
    const partitions = projection.partitions ?? 1;
    /** Whether a checkpoint is thrown away by the next pass: an older version, or another number of parts. */
    const pending = (checkpoint: CheckpointState | null) =>
      checkpoint !== null &&
      (checkpoint.version < projection.version ||
        (checkpoint.version === projection.version && checkpoint.parts !== partitions));
    const stateOf = (evidence: Pick<PartProgress, 'checkpoint' | 'oldestUnapplied' | 'lagEvents' | 'lagSeconds' | 'owner'>) => {
      const { checkpoint, oldestUnapplied } = evidence;
      const heldBack = oldestUnapplied?.heldBack ?? false;
      return deriveState({
        hasCheckpoint: checkpoint !== null,
        rebuildPending: pending(checkpoint) && !serving.has(projection.name),
        blocked: (checkpoint?.blockedBy ?? null) !== null,
        heldBack,
        heldBackMs: heldBack ? heldBackMs(evidence.lagSeconds, heldBackBy) : 0,
        stallAfterMs: options.stallAfter,
        lagEvents: evidence.lagEvents,
        owned: evidence.owner !== null,
        sinceUpdateMs: checkpoint ? readAt - checkpoint.updatedAt.getTime() : null,
        activeWithinMs: 2 * options.pollInterval,
        sinceErrorMs: checkpoint?.lastErrorAt ? readAt - checkpoint.lastErrorAt.getTime() : null,
      });
    };
    const { checkpoint } = found;
    const rebuildPending = pending(checkpoint);
    const state = stateOf(found);
    const status: ProjectionStatus = {
      name: found.name,
      version: projection.version,
      storedVersion: checkpoint?.version ?? null,
      rebuildPending,
      problem: checkpoint && findProblem(projection, checkpoint),
      state,
      position: (checkpoint?.position ?? 0n).toString(),
      headPosition,
      lagEvents: found.lagEvents.toString(),
      lagSeconds: found.lagSeconds,
      failedEvents: found.parkedEvents,
      updatedAt: checkpoint?.updatedAt.toISOString() ?? null,
      owner: found.owner,
      blockedBy: checkpoint?.blockedBy?.toString() ?? null,
      lastError: checkpoint?.lastError ?? null,
      lastErrorAt: checkpoint?.lastErrorAt?.toISOString() ?? null,
      stalledBy: state === PROJECTION_STATES.stalled ? heldBackBy : null,
      build: null,
    };
    if (partitions === 1) return status;
    const parts = found.parts.map(
      (part): PartStatus => ({
        part: part.part,
        state: stateOf(part),
        position: (part.checkpoint?.position ?? 0n).toString(),
        lagEvents: part.lagEvents.toString(),
        lagSeconds: part.lagSeconds,
        updatedAt: part.checkpoint?.updatedAt.toISOString() ?? null,
        owner: part.owner,
        blockedBy: part.checkpoint?.blockedBy?.toString() ?? null,
        lastError: part.checkpoint?.lastError ?? null,
        lastErrorAt: part.checkpoint?.lastErrorAt?.toISOString() ?? null,
      }),
    );
    return { ...status, parts };
  });
  // The builds come after the projections, under their keys: each goes to its projection.
  const builds = new Map(all.filter((status) => isBuildKey(status.name)).map((status) => [status.name, status]));
  return {
    readAt: progress.readAt.toISOString(),
    headPosition,
    heldBackBy,
    projections: all
      .filter((status) => !isBuildKey(status.name))
      .map((status) => withBuild(status, builds.get(buildKey(status.name)))),
  };
}

/**
 * While a build runs, the live projection is the older version, serving: its state is what
 * the tables say of it, not `stopped` for a rebuild pending.
 */
function withBuild(status: ProjectionStatus, build: ProjectionStatus | undefined): ProjectionStatus {
  if (!build) return status;
  const { state, position, lagEvents, lagSeconds, failedEvents, updatedAt, owner, blockedBy, lastError, lastErrorAt, parts } = build;
  return {
    ...status,
    build: {
      // The version its checkpoint is of: a daemon of another version may be building it.
      version: build.storedVersion ?? build.version,
      state,
      position,
      lagEvents,
      lagSeconds,
      failedEvents,
      updatedAt,
      owner,
      blockedBy,
      lastError,
      lastErrorAt,
      ...(parts ? { parts } : {}),
      schema: buildSchemaName(status.name),
    },
  };
}

/**
 * At most how long the oldest held-back event has waited, in ms. Its commit time is not
 * recorded, but two times before it are: its `created_at` (its own transaction's start, which
 * `lagSeconds` counts from) and the start of the open transaction holding it back (which took
 * its id before the event's, so it began before the event committed). The later of the two is
 * the closer bound. A bound from above: a stall is never reported late, and early only when
 * both transactions ran longer than `stallAfter`. A prepared transaction's time is that of its
 * PREPARE, which may come after the event's commit, so it is no bound.
 */
function heldBackMs(lagSeconds: number, blocker: BlockingTransaction | null): number {
  const blockerSeconds = blocker && blocker.pid !== null ? blocker.transactionAgeSeconds : Number.POSITIVE_INFINITY;
  return Math.min(lagSeconds, blockerSeconds) * 1000;
}

/** What needs someone, comparing the loaded module with its checkpoint. */
function findProblem(
  projection: Pick<Projection, 'name' | 'version' | 'eventTypes'> & { partitions?: number },
  checkpoint: Pick<CheckpointState, 'version' | 'selection' | 'parts'>,
): string | null {
  if (checkpoint.version > projection.version) {
    return `version ${projection.version} loaded, but the store holds version ${checkpoint.version}, written by newer code: a daemon running this version leaves it alone; run the newer code`;
  }
  if (checkpoint.version < projection.version) return null;
  if (checkpoint.parts !== (projection.partitions ?? 1)) return null; // rebuilt from the start: any selection goes
  const change = compareSelections(checkpoint.selection, selectionOf(projection));
  if (change === null) return null;
  return `its handlers read other event types than its checkpoint was built with (${describeSelectionChange(change)}) and a daemon refuses to run it: bump its version to rebuild it, or run \`projd replay ${projection.name}\``;
}

const QUERY_SHOWN_CHARS = 120;

function blockingTransaction(open: OpenTransaction, readAt: number): BlockingTransaction {
  const oneLine = open.query?.replace(/\s+/g, ' ').trim() ?? null;
  return {
    pid: open.pid,
    database: open.database,
    user: open.user,
    applicationName: open.applicationName,
    state: open.state,
    transactionStartedAt: open.transactionStartedAt?.toISOString() ?? null,
    transactionAgeSeconds: open.transactionStartedAt
      ? Math.max(0, (readAt - open.transactionStartedAt.getTime()) / 1000)
      : 0,
    queryStartedAt: open.queryStartedAt?.toISOString() ?? null,
    query:
      oneLine !== null && oneLine.length > QUERY_SHOWN_CHARS ? `${oneLine.slice(0, QUERY_SHOWN_CHARS - 1)}…` : oneLine,
  };
}
