import { CHECKPOINTS_TABLE, EVENTS_TABLE, FAILED_EVENTS_TABLE, SCHEMA, advisoryLockKey, partLockKey } from './names.js';
import { partsOfProjection, streamPartMatchesSql } from './part.js';
import { comparePositions, type Position } from './position.js';
import type { Queryable } from './queryable.js';
import { schemaMissingError } from './schemaMissing.js';
import { eventTypeFilter, eventTypeMatchesSql } from './eventTypeFilter.js';
import { toSelection, type Selection } from './selection.js';
import { BATCH_MARK_PATTERN, GATE_COLUMNS, HELD_BACK } from './snapshotGate.js';

/** A projection as progress needs it: its name, its code's version and the types it handles. */
export interface ProgressProjection {
  name: string;
  version: number;
  eventTypes: readonly string[];
  /** @defaultValue 1 */
  partitions?: number;
  /**
   * Its checkpoint serves while a blue/green build makes the loaded version beside it: the lag
   * counts from that checkpoint, whatever version it is of, rather than from the start.
   */
  serving?: boolean;
}

/** A projection's row in `projd.checkpoints` (of a split one, see `ProjectionProgress.parts`). */
export interface CheckpointState extends Position {
  version: number;
  /** How many parts it was set up with: 1 when not split. */
  parts: number;
  updatedAt: Date;
  /** The parked event (`projd.failed_events.id`) the projection stopped at, under `onError: stop`. */
  blockedBy: bigint | null;
  lastError: string | null;
  lastErrorAt: Date | null;
  /** The events it was built reading; null when written before projd recorded it. */
  selection: Selection | null;
}

/** The oldest committed event of a projection's types that it has not applied. */
export interface UnappliedEvent extends Position {
  createdAt: Date;
  /** Above the snapshot gate: an older transaction still open holds it back. */
  heldBack: boolean;
}

/** A session holding a projection's lock right now: a daemon in the middle of a batch. */
export interface LockOwner {
  pid: number;
  /** `projd batch <host>:<pid>` for a daemon in a batch (`projd daemon …` otherwise). */
  applicationName: string | null;
}

/** The open transaction that holds the snapshot gate back. */
export interface OpenTransaction {
  /** Null for a prepared transaction, which belongs to no session. */
  pid: number | null;
  database: string | null;
  user: string | null;
  applicationName: string | null;
  /** `pg_stat_activity.state` (`idle in transaction`, `active`, …), or `prepared`. */
  state: string | null;
  transactionStartedAt: Date | null;
  queryStartedAt: Date | null;
  /** Its current or last statement, as PostgreSQL reports it, cut to 1000 characters. */
  query: string | null;
}

/** How far one part of a split projection has come; the fields are those of `ProjectionProgress`. */
export interface PartProgress {
  /** 0 to `partitions - 1`. */
  part: number;
  checkpoint: CheckpointState | null;
  oldestUnapplied: UnappliedEvent | null;
  lagEvents: bigint;
  lagSeconds: number;
  owner: LockOwner | null;
}

export interface ProjectionProgress {
  name: string;
  /**
   * Null before a daemon first set the projection up. Of a split projection, its parts together:
   * the position of the part furthest behind (every event before it is applied), the latest
   * update and error, and the failed event a part halted on.
   */
  checkpoint: CheckpointState | null;
  /** Null when it has applied every committed event of its types. */
  oldestUnapplied: UnappliedEvent | null;
  /**
   * 0 exactly when `oldestUnapplied` is null; otherwise an estimate from positions, at least 1:
   * the events of any type from the oldest unapplied one (or the checkpoint) to the head.
   */
  lagEvents: bigint;
  /** Age of `oldestUnapplied` in seconds; 0 when there is none. */
  lagSeconds: number;
  /** Its events parked in `projd.failed_events`. */
  parkedEvents: number;
  /** Of a split projection, a part's session holding its lock. */
  owner: LockOwner | null;
  /** One per part, in order; the one part of a projection that is not split. */
  parts: PartProgress[];
}

export interface Progress {
  /** The server's clock when it read, to compare with `updatedAt` without client clock skew. */
  readAt: Date;
  /** Highest position in the store; 0 when it is empty. */
  headPosition: bigint;
  /** Committed events exist above the snapshot gate. */
  heldBack: boolean;
  /** The oldest open transaction, when events are held back and it is visible to this role. */
  heldBackBy: OpenTransaction | null;
  /** One per requested projection, in the order asked. */
  projections: ProjectionProgress[];
}

/**
 * In `pg_locks`, a `bigint` advisory lock key shows up split in two unsigned 32-bit halves:
 * `classid` the high one and `objid` the low one, with `objsubid = 1`.
 */
export function advisoryLockTag(key: string): { classid: number; objid: number } {
  const unsigned = BigInt.asUintN(64, BigInt(key));
  return { classid: Number(unsigned >> 32n), objid: Number(unsigned & 0xffff_ffffn) };
}

/**
 * Everything in one statement, so one snapshot gives the gate, the head and every lag. Each
 * part is an index probe: the head and the oldest unapplied event walk the primary key and
 * the delivery-order index from one end, parked events use the partial index on status.
 * The lag probe skips the events of other types after the checkpoint; a running daemon moves
 * its checkpoint past those, so the walk stays short.
 * `pg_stat_activity` and `pg_locks` are read once each. Only transactions with an id (and
 * prepared ones) hold the gate, and no projection's batch does (`BATCH_MARK`); the oldest of
 * those is the one to name. This session is left out: it only reads, and a caller's own
 * transaction is not what it waits for.
 */
export const readProgressSql = /* sql */ `
  with gate as materialized (select ${GATE_COLUMNS}, now() as read_at),
  head as materialized (
    select coalesce(max(e.position), 0) as position from ${EVENTS_TABLE} e
  ),
  held_back as materialized (select ${HELD_BACK} as held_back),
  activity as materialized (
    select a.pid, a.datname::text as database, a.usename::text as user_name, a.application_name,
           a.state, a.xact_start, a.query_start, left(a.query, 1000) as query, a.backend_xid
      from pg_stat_activity a
  ),
  blocker as materialized (
    select c.* from (
      select a.pid, a.database, a.user_name, a.application_name, a.state, a.xact_start,
             a.query_start, a.query, age(a.backend_xid) as xid_age
        from activity a
       where a.backend_xid is not null and a.pid <> pg_backend_pid()
         and coalesce(a.application_name, '') not like '${BATCH_MARK_PATTERN}'
      union all
      select null, p.database::text, p.owner::text, null, 'prepared', p.prepared,
             null, 'prepared transaction ' || quote_literal(p.gid), age(p.transaction)
        from pg_prepared_xacts p
    ) c
     where (select held_back from held_back)
     order by c.xid_age desc
     limit 1
  ),
  advisory_lock as materialized (
    select l.classid::bigint as classid, l.objid::bigint as objid, l.pid, a.application_name
      from pg_locks l
      left join activity a on a.pid = l.pid
     where l.locktype = 'advisory' and l.granted and l.objsubid = 1
       and l.database = (select d.oid from pg_database d where d.datname = current_database())
  ),
  projection as (
    select p.name, p.version, p.part, p.parts, p.types, p.type_prefixes, p.lock_classid, p.lock_objid,
           c.projection is not null as has_checkpoint, c.version as stored_version, c.parts as stored_parts,
           c.era, c.transaction_id, c.position, c.updated_at, c.blocked_by, c.last_error, c.last_error_at,
           c.selection, c.rebuild_pending,
           -- No checkpoint yet, or one of an older version or of another number of parts, which
           -- is rebuilt from the start: count the lag from there.
           case when c.rebuild_pending is not false then 0 else c.era end as from_era,
           case when c.rebuild_pending is not false then '0'::xid8 else c.transaction_id end as from_transaction_id,
           case when c.rebuild_pending is not false then 0 else c.position end as from_position
      from jsonb_to_recordset($1::jsonb)
           as p(name text, version integer, part integer, parts integer, types text[], type_prefixes text[],
                lock_classid bigint, lock_objid bigint, serving boolean)
      left join lateral (
        select c.*, not p.serving and (c.version < p.version or (c.version = p.version and c.parts <> p.parts)) as rebuild_pending
          from ${CHECKPOINTS_TABLE} c
         where c.projection = p.name and c.part = p.part
      ) c on true
  ),
  parked as materialized (
    select f.projection, count(*) as parked
      from ${FAILED_EVENTS_TABLE} f
     where f.status = 'parked' and f.projection in (select name from projection)
     group by f.projection
  )
  select g.read_at, h.position::text as head_position, hb.held_back,
         b.xid_age is not null as blocker_found, b.pid as blocker_pid,
         b.database as blocker_database, b.user_name as blocker_user,
         b.application_name as blocker_application_name, b.state as blocker_state,
         b.xact_start as blocker_xact_start, b.query_start as blocker_query_start, b.query as blocker_query,
         p.name, p.part, p.has_checkpoint, p.stored_version, p.stored_parts, p.era, p.transaction_id::text as transaction_id,
         p.position::text as position, p.updated_at, p.blocked_by::text as blocked_by,
         p.last_error, p.last_error_at, p.selection,
         o.era as oldest_era, o.transaction_id::text as oldest_transaction_id,
         o.position::text as oldest_position, o.created_at as oldest_created_at,
         (o.era, o.transaction_id) >= (g.era, g.xmin) as oldest_held_back,
         case when o.position is null then 0
              else greatest(1, h.position - greatest(p.from_position, o.position - 1))
         end::text as lag_events,
         coalesce(greatest(0, extract(epoch from g.read_at - o.created_at)), 0)::float8 as lag_seconds,
         coalesce(f.parked, 0)::integer as parked_events,
         l.pid as owner_pid, l.application_name as owner_application_name
    from gate g
   cross join head h
   cross join held_back hb
    left join blocker b on true
    left join projection p on true
    left join lateral (
      select e.era, e.transaction_id, e.position, e.created_at
        from ${EVENTS_TABLE} e
       where (e.era, e.transaction_id, e.position) > (p.from_era, p.from_transaction_id, p.from_position)
         and ${eventTypeMatchesSql('e.type', 'p.types', 'p.type_prefixes')}
         and (p.parts = 1 or ${streamPartMatchesSql('e.stream_id', 'p.parts', 'p.part')})
       order by e.era, e.transaction_id, e.position
       limit 1
    ) o on true
    left join parked f on f.projection = p.name
    left join lateral (
      select l.pid, l.application_name
        from advisory_lock l
       where l.classid = p.lock_classid and l.objid = p.lock_objid
       limit 1
    ) l on true`;

interface ProgressRow {
  read_at: Date;
  head_position: string;
  held_back: boolean;
  blocker_found: boolean;
  blocker_pid: number | null;
  blocker_database: string | null;
  blocker_user: string | null;
  blocker_application_name: string | null;
  blocker_state: string | null;
  blocker_xact_start: Date | null;
  blocker_query_start: Date | null;
  blocker_query: string | null;
  name: string | null;
  part: number | null;
  has_checkpoint: boolean | null;
  stored_version: number | null;
  stored_parts: number | null;
  era: number | null;
  transaction_id: string | null;
  position: string | null;
  updated_at: Date | null;
  blocked_by: string | null;
  last_error: string | null;
  last_error_at: Date | null;
  selection: unknown;
  oldest_era: number | null;
  oldest_transaction_id: string | null;
  oldest_position: string | null;
  oldest_created_at: Date | null;
  oldest_held_back: boolean | null;
  lag_events: string;
  lag_seconds: number;
  parked_events: number;
  owner_pid: number | null;
  owner_application_name: string | null;
}

/**
 * How far each projection has come, read from the tables alone: no daemon needs to run.
 * @throws UserError when projd's tables are missing or out of date.
 */
export async function readProgress(db: Queryable, projections: readonly ProgressProjection[]): Promise<Progress> {
  // A row per part: a projection that is not split is its one part, under the projection's lock.
  const parameter = projections.flatMap((projection) => {
    const types = eventTypeFilter(projection.eventTypes);
    return partsOfProjection(projection).map((part) => {
      const key = part.count > 1 ? partLockKey(projection.name, part.index) : advisoryLockKey('projection', projection.name);
      const lock = advisoryLockTag(key);
      return {
        name: projection.name,
        version: projection.version,
        part: part.index,
        parts: part.count,
        types: types.exact,
        type_prefixes: types.prefixes,
        lock_classid: lock.classid,
        lock_objid: lock.objid,
        serving: projection.serving ?? false,
      };
    });
  });
  let rows: ProgressRow[];
  try {
    ({ rows } = await db.query<ProgressRow>(readProgressSql, [JSON.stringify(parameter)]));
  } catch (error) {
    throw schemaMissingError(error);
  }
  const first = rows[0]!; // the gate always yields one row, projections or not
  const byName = new Map<string, { row: ProgressRow; parts: PartProgress[] }>();
  for (const row of rows) {
    if (row.name === null) continue;
    const found = byName.get(row.name) ?? { row, parts: [] };
    found.parts.push(partProgress(row));
    byName.set(row.name, found);
  }
  return {
    readAt: first.read_at,
    headPosition: BigInt(first.head_position),
    heldBack: first.held_back,
    heldBackBy: first.blocker_found ? openTransaction(first) : null,
    projections: projections.map((projection) => {
      const { row, parts } = byName.get(projection.name)!;
      return projectionProgress(row, parts.sort((a, b) => a.part - b.part));
    }),
  };
}

/** A projection's progress from its parts': for a projection that is not split, its one part's. */
function projectionProgress(row: ProgressRow, parts: PartProgress[]): ProjectionProgress {
  const name = row.name!;
  const parkedEvents = row.parked_events;
  if (parts.length === 1) {
    const [{ part: _part, ...whole }] = parts as [PartProgress];
    return { name, ...whole, parkedEvents, parts };
  }
  const checkpoints = parts.map((part) => part.checkpoint);
  const unapplied = parts.flatMap((part) => (part.oldestUnapplied ? [part.oldestUnapplied] : []));
  return {
    name,
    // Parts without a row: the projection was set up with fewer parts (part 0 says how many).
    checkpoint: checkpoints.every((checkpoint) => checkpoint !== null)
      ? combineCheckpoints(checkpoints as CheckpointState[])
      : (checkpoints[0] ?? null),
    oldestUnapplied: unapplied.reduce<UnappliedEvent | null>(
      (oldest, event) => (oldest === null || comparePositions(event, oldest) < 0 ? event : oldest),
      null,
    ),
    lagEvents: parts.reduce((most, part) => (part.lagEvents > most ? part.lagEvents : most), 0n),
    lagSeconds: Math.max(...parts.map((part) => part.lagSeconds)),
    parkedEvents,
    owner: parts.find((part) => part.owner !== null)?.owner ?? null,
    parts,
  };
}

/** The parts' checkpoints as one: the position of the part furthest behind, the latest update and error. */
function combineCheckpoints(checkpoints: CheckpointState[]): CheckpointState {
  const behind = checkpoints.reduce((least, checkpoint) => (comparePositions(checkpoint, least) < 0 ? checkpoint : least));
  const latest = (dates: Array<Date | null>) =>
    dates.reduce<Date | null>((last, date) => (date !== null && (last === null || date > last) ? date : last), null);
  const erred = checkpoints.filter((checkpoint) => checkpoint.lastErrorAt !== null);
  const lastErred = erred.sort((a, b) => b.lastErrorAt!.getTime() - a.lastErrorAt!.getTime())[0];
  return {
    ...checkpoints[0]!,
    era: behind.era,
    transactionId: behind.transactionId,
    position: behind.position,
    updatedAt: latest(checkpoints.map((checkpoint) => checkpoint.updatedAt))!,
    blockedBy: checkpoints.find((checkpoint) => checkpoint.blockedBy !== null)?.blockedBy ?? null,
    lastError: lastErred?.lastError ?? null,
    lastErrorAt: lastErred?.lastErrorAt ?? null,
  };
}

function partProgress(row: ProgressRow): PartProgress {
  const checkpoint: CheckpointState | null = row.has_checkpoint
    ? {
        version: row.stored_version!,
        parts: row.stored_parts!,
        era: row.era!,
        transactionId: BigInt(row.transaction_id!),
        position: BigInt(row.position!),
        updatedAt: row.updated_at!,
        blockedBy: row.blocked_by === null ? null : BigInt(row.blocked_by),
        lastError: row.last_error,
        lastErrorAt: row.last_error_at,
        selection: toSelection(row.selection),
      }
    : null;
  const oldestUnapplied: UnappliedEvent | null =
    row.oldest_position === null
      ? null
      : {
          era: row.oldest_era!,
          transactionId: BigInt(row.oldest_transaction_id!),
          position: BigInt(row.oldest_position),
          createdAt: row.oldest_created_at!,
          heldBack: row.oldest_held_back === true,
        };
  return {
    part: row.part!,
    checkpoint,
    oldestUnapplied,
    lagEvents: BigInt(row.lag_events),
    lagSeconds: row.lag_seconds,
    owner:
      row.owner_pid === null ? null : { pid: row.owner_pid, applicationName: row.owner_application_name || null },
  };
}

function openTransaction(row: ProgressRow): OpenTransaction {
  return {
    pid: row.blocker_pid,
    database: row.blocker_database,
    user: row.blocker_user,
    applicationName: row.blocker_application_name || null,
    state: row.blocker_state,
    transactionStartedAt: row.blocker_xact_start,
    queryStartedAt: row.blocker_query_start,
    query: row.blocker_query,
  };
}
