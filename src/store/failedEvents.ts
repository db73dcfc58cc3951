import { CHECKPOINTS_TABLE, EVENTS_TABLE, FAILED_EVENTS_TABLE } from './names.js';
import { notifyProgressFromRowSql } from './progressNotice.js';
import type { Position } from './position.js';
import type { Queryable } from './queryable.js';

export const FAILED_EVENT_STATUSES = ['parked', 'retried', 'skipped'] as const;
export type FailedEventStatus = (typeof FAILED_EVENT_STATUSES)[number];

/** What went wrong with an event: thrown by the handler, or refused by PostgreSQL. */
export interface Failure {
  errorClass: 'handler' | 'database';
  message: string;
  /** SQLSTATE, when PostgreSQL refused it. */
  code: string | null;
}

export interface FailedEvent {
  id: bigint;
  projection: string;
  position: bigint;
  transactionId: bigint;
  streamId: string;
  type: string;
  errorClass: string;
  errorMessage: string;
  errorCode: string | null;
  attempts: number;
  status: FailedEventStatus;
  firstFailedAt: Date;
  lastFailedAt: Date;
  resolvedAt: Date | null;
  /** Of a split projection (as set up now), the part of the event's stream, which halts on it under `onError: stop`. */
  part?: { index: number; count: number };
}

interface FailedEventRow {
  id: string;
  projection: string;
  position: string;
  transaction_id: string;
  stream_id: string;
  type: string;
  error_class: string;
  error_message: string;
  error_code: string | null;
  attempts: number;
  status: FailedEventStatus;
  first_failed_at: Date;
  last_failed_at: Date;
  resolved_at: Date | null;
  part?: number | null;
  parts?: number | null;
}

const COLUMNS = /* sql */ `
  id::text as id, projection, position::text as position, transaction_id::text as transaction_id,
  stream_id, type, error_class, error_message, error_code, attempts, status,
  first_failed_at, last_failed_at, resolved_at`;

function toFailedEvent(row: FailedEventRow): FailedEvent {
  return {
    id: BigInt(row.id),
    projection: row.projection,
    position: BigInt(row.position),
    transactionId: BigInt(row.transaction_id),
    streamId: row.stream_id,
    type: row.type,
    errorClass: row.error_class,
    errorMessage: row.error_message,
    errorCode: row.error_code,
    attempts: row.attempts,
    status: row.status,
    firstFailedAt: row.first_failed_at,
    lastFailedAt: row.last_failed_at,
    resolvedAt: row.resolved_at,
    ...(row.part != null && row.parts != null && row.parts > 1 ? { part: { index: row.part, count: row.parts } } : {}),
  };
}

const recordFailureSql = /* sql */ `
  insert into ${FAILED_EVENTS_TABLE}
         (projection, position, transaction_id, stream_id, type, error_class, error_message, error_code, attempts)
  select $1, e.position, e.transaction_id, e.stream_id, e.type, $3, $4, $5, $6
    from ${EVENTS_TABLE} e where e.position = $2::bigint
  on conflict (projection, position) do update
     set error_class = excluded.error_class, error_message = excluded.error_message,
         error_code = excluded.error_code, attempts = ${FAILED_EVENTS_TABLE}.attempts + excluded.attempts,
         status = 'parked', last_failed_at = now(), resolved_at = null
  returning id::text as id`;

/**
 * Parks an event: records it with its failure, in the caller's transaction (the one that moves
 * the checkpoint past it, or blocks the projection on it). An event parked before, retried and
 * failed again, gets its attempts added up. Returns its id.
 */
export async function recordFailure(
  db: Queryable,
  projection: string,
  eventPosition: bigint,
  failure: Failure,
  attempts: number,
): Promise<bigint> {
  const { rows } = await db.query<{ id: string }>(recordFailureSql, [
    projection,
    eventPosition.toString(),
    failure.errorClass,
    failure.message,
    failure.code,
    attempts,
  ]);
  return BigInt(rows[0]!.id);
}

export interface ListFailedOptions {
  projection?: string;
  /** @defaultValue `['parked']` */
  statuses?: readonly FailedEventStatus[];
  ids?: readonly bigint[];
}

// The part from the number of parts the projection is set up with now (its part 0 row).
const listFailedSql = /* sql */ `
  select f.*, c.parts, case when c.parts > 1 then projd.stream_part(f.stream_id, c.parts) end as part
    from (select ${COLUMNS} from ${FAILED_EVENTS_TABLE}
           where ($1::text is null or projection = $1)
             and status = any($2::text[])
             and ($3::bigint[] is null or id = any($3::bigint[]))) f
    left join ${CHECKPOINTS_TABLE} c on c.projection = f.projection and c.part = 0
   order by f.projection, f.position::bigint`;

export async function listFailedEvents(db: Queryable, options: ListFailedOptions = {}): Promise<FailedEvent[]> {
  const { rows } = await db.query<FailedEventRow>(listFailedSql, [
    options.projection ?? null,
    options.statuses ?? ['parked'],
    options.ids ? options.ids.map(String) : null,
  ]);
  return rows.map(toFailedEvent);
}

const selectFailedSql = /* sql */ `select ${COLUMNS} from ${FAILED_EVENTS_TABLE} where id = $1::bigint`;

/**
 * The failed event, row-locked for the rest of the transaction unless `lock` is false;
 * null when there is no such id.
 */
export async function lockFailedEvent(
  db: Queryable,
  id: bigint,
  { lock = true }: { lock?: boolean } = {},
): Promise<FailedEvent | null> {
  const { rows } = await db.query<FailedEventRow>(`${selectFailedSql}${lock ? ' for update' : ''}`, [id.toString()]);
  return rows[0] ? toFailedEvent(rows[0]) : null;
}

const resolveSql = /* sql */ `
  update ${FAILED_EVENTS_TABLE} set status = $2, resolved_at = now() where id = $1::bigint`;

export async function resolveFailedEvent(db: Queryable, id: bigint, status: 'retried' | 'skipped'): Promise<void> {
  await db.query(resolveSql, [id.toString(), status]);
}

const noteRetryFailureSql = /* sql */ `
  update ${FAILED_EVENTS_TABLE}
     set attempts = attempts + 1, last_failed_at = now(), error_class = $2, error_message = $3, error_code = $4
   where id = $1::bigint`;

/** A retry from the CLI failed again: counted, with its new error; it stays parked. */
export async function noteRetryFailure(db: Queryable, id: bigint, failure: Failure): Promise<void> {
  await db.query(noteRetryFailureSql, [id.toString(), failure.errorClass, failure.message, failure.code]);
}

const blockSql = /* sql */ `
  update ${CHECKPOINTS_TABLE}
     set blocked_by = $2::bigint, last_error = $3, last_error_at = now(), updated_at = now()
   where projection = $1 and part = $4`;

/**
 * `onError: stop`: the projection halts right before the failed event until it is retried or
 * skipped; of a split projection, the part of the event's stream halts, the others go on.
 */
export async function blockProjection(
  db: Queryable,
  projection: string,
  failedEventId: bigint,
  message: string,
  part: number = 0,
) {
  await db.query(blockSql, [projection, failedEventId.toString(), message, part]);
}

// Waiters hear of the move at commit, as of a batch's.
const unblockSql = /* sql */ `
  with moved as (
    update ${CHECKPOINTS_TABLE}
       set blocked_by = null, last_error = null, last_error_at = null,
           era = $3::integer, transaction_id = $4::xid8, position = $5::bigint, updated_at = now()
     where projection = $1 and blocked_by = $2::bigint
    returning projection, part, parts, era, transaction_id, position
  )
  select ${notifyProgressFromRowSql('moved')} from moved`;

/**
 * The blocking event was retried or skipped: the checkpoint moves onto it (it is the next
 * event in order, as the projection halted right before it) and the projection runs again.
 * Of a split projection, whichever part it blocked. Returns false when nothing was blocked by it.
 */
export async function unblockProjection(
  db: Queryable,
  projection: string,
  failedEventId: bigint,
  at: Position,
): Promise<boolean> {
  const { rowCount } = await db.query(unblockSql, [
    projection,
    failedEventId.toString(),
    at.era,
    at.transactionId.toString(),
    at.position.toString(),
  ]);
  return rowCount === 1;
}
