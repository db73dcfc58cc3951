import { UserError } from '../errors.js';
import { sqlstateOf } from './classifyError.js';
import { EVENTS_TABLE } from './names.js';
import type { Queryable } from './queryable.js';

/** An event to append: what the writer chooses. The store assigns position, version and transaction. */
export interface NewEvent {
  /** The event type, e.g. `account.credited`. */
  type: string;
  /** The payload, stored as `jsonb`; anything `JSON.stringify` accepts. */
  data: unknown;
  /** Correlation ids, actor, … @defaultValue `{}` */
  metadata?: Record<string, unknown>;
  /** The payload's schema version, for upcasters. @defaultValue 1 */
  schemaVersion?: number;
}

/**
 * What the writer expects of the stream before its events go on the end of it:
 * - a number: the stream is at exactly this version (`0`: it has no events yet);
 * - `'no_stream'`: the stream has no events yet (the same as `0`);
 * - `'stream_exists'`: the stream has at least one event;
 * - `'any'`: no check; the events go on the end, whatever is there.
 *
 * The names are EventStoreDB's.
 */
export type ExpectedVersion = number | 'any' | 'no_stream' | 'stream_exists';

export interface AppendOptions {
  /** @defaultValue `'any'` */
  expectedVersion?: ExpectedVersion;
}

export interface AppendResult {
  /** Each event's global position, in the order given. */
  positions: bigint[];
  /** Each event's version in its stream, in the order given: consecutive. */
  streamVersions: number[];
  /** The transaction that wrote the events: the caller's own, when `db` is a client inside one. */
  transactionId: bigint;
  /** The stream's version after these events: the `expectedVersion` of the next append. */
  nextExpectedVersion: number;
}

/** The `code` of a `VersionConflictError`. */
export const VERSION_CONFLICT_CODE = 'PROJD_VERSION_CONFLICT';

/**
 * The stream was not at the version the writer expected, or another writer appended to it
 * at the same time. Nothing of the append was written. Detected by `code` (or
 * `isVersionConflictError`), not `instanceof`: an application may load two copies of projd.
 */
export class VersionConflictError extends Error {
  readonly code = VERSION_CONFLICT_CODE;
  constructor(
    /** The stream appended to. */
    readonly streamId: string,
    /** What the writer expected. */
    readonly expectedVersion: ExpectedVersion,
    /**
     * The stream's version as the append found it; null when a concurrent append was seen
     * only through the unique (stream_id, stream_version) constraint, inside a transaction
     * that the conflict aborted.
     */
    readonly actualVersion: number | null,
    options?: { cause?: unknown },
  ) {
    super(versionConflictMessage(streamId, expectedVersion, actualVersion), options);
    this.name = 'VersionConflictError';
  }
}

export function isVersionConflictError(error: unknown): error is VersionConflictError {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === VERSION_CONFLICT_CODE;
}

function versionConflictMessage(streamId: string, expected: ExpectedVersion, actual: number | null): string {
  const found = actual === null ? 'another writer appended to it at the same time' : actual === 0 ? 'it has no events' : `it is at version ${actual}`;
  return `stream '${streamId}': expected ${describeExpected(expected)}, but ${found}`;
}

function describeExpected(expected: ExpectedVersion): string {
  if (expected === 'any') return 'any version';
  if (expected === 'no_stream' || expected === 0) return 'no events yet';
  if (expected === 'stream_exists') return 'an existing stream';
  return `version ${expected}`;
}

/**
 * The stream's head version, read in the statement's snapshot, and the new rows numbered on
 * from it, inserted only when the head lies in [$3, $4] (the expectation; $4 null: no upper
 * bound). On a mismatch nothing is inserted and the one row returned carries the head alone.
 * A writer that appends the same versions meanwhile is caught by the unique constraint.
 */
export const appendEventsSql = /* sql */ `
  with head as (
    select coalesce(max(e.stream_version), 0) as version from ${EVENTS_TABLE} e where e.stream_id = $1
  ),
  appended as (
    insert into ${EVENTS_TABLE} (stream_id, stream_version, type, data, metadata, schema_version)
    select $1, head.version + new.n::integer, new.event->>'type', new.event->'data', new.event->'metadata',
           (new.event->>'schemaVersion')::integer
      from head, jsonb_array_elements($2::jsonb) with ordinality as new(event, n)
     where head.version >= $3::integer and head.version <= coalesce($4::integer, 2147483647)
     order by new.n
    returning position, stream_version, transaction_id
  )
  select head.version as head_version, a.position::text as position, a.stream_version,
         a.transaction_id::text as transaction_id
    from head left join appended a on true
   order by a.position`;

interface AppendRow {
  head_version: number;
  position: string | null;
  stream_version: number | null;
  transaction_id: string | null;
}

/**
 * Attempts on a pool before a conflict is reported. Each attempt after a conflict waits for
 * the winner's commit (on the unique index) and reads its version, so one of the writers
 * always gets through; five covers a handful of writers racing on one stream.
 */
const POOL_ATTEMPTS = 5;

/** Raised by the view of an adopted store on any write (migration 0010). */
const ADOPTED_STORE_SQLSTATE = 'PJ001';

/** `unique_violation` on (stream_id, stream_version): another writer took these versions. */
const STREAM_VERSION_KEY = 'events_stream_version_key';

/**
 * Appends `events` to the end of stream `streamId` in one statement: all of them, with
 * consecutive stream versions, or none. Returns their positions and the writing transaction.
 *
 * `db` is a `pg.Pool` or a client. On a pool the statement commits on its own; a conflict with
 * a concurrent writer (or a serialization failure, SQLSTATE 40001) is retried, 5 attempts in all,
 * so `'any'` appends at the end however writers race. On a client the statement joins the
 * caller's transaction, if one is open, and commits with it; nothing is retried, because the
 * conflict has aborted that transaction: retry the whole transaction.
 *
 * @throws VersionConflictError when the stream does not match `expectedVersion`, or another
 * writer appended the same versions first (on a pool: five times in a row).
 * @throws UserError (code `PROJD_USER_ERROR`) when the store is adopted (`projd migrate --adopt`):
 * the application that owns its table appends there.
 * @throws TypeError when `events` is empty, an event lacks a `type` or `data`, or
 * `expectedVersion` is none of the above.
 */
export async function appendEvents(
  db: Queryable,
  streamId: string,
  events: readonly NewEvent[],
  options: AppendOptions = {},
): Promise<AppendResult> {
  if (events.length === 0) throw new TypeError(`appendEvents: no events to append to stream '${streamId}'`);
  const expected = options.expectedVersion ?? 'any';
  const [low, high] = expectedRange(expected);
  const params = [streamId, JSON.stringify(events.map(checkedEvent)), low, high];
  const attempts = isPool(db) ? POOL_ATTEMPTS : 1;

  for (let attempt = 1; ; attempt += 1) {
    let rows: AppendRow[];
    try {
      ({ rows } = await db.query<AppendRow>(appendEventsSql, params));
    } catch (error) {
      const conflict = isStreamVersionTaken(error);
      if ((conflict || sqlstateOf(error) === '40001') && attempt < attempts) continue;
      if (conflict) throw new VersionConflictError(streamId, expected, null, { cause: error });
      // An adopted store: the application that owns the table appends, with its own checks.
      if (sqlstateOf(error) === ADOPTED_STORE_SQLSTATE) {
        throw new UserError((error as Error).message.replace(/^projd: /, ''), { cause: error });
      }
      throw error;
    }
    const appended = rows.filter((row) => row.position !== null);
    if (appended.length === 0) throw new VersionConflictError(streamId, expected, rows[0]!.head_version);
    return {
      positions: appended.map((row) => BigInt(row.position!)),
      streamVersions: appended.map((row) => row.stream_version!),
      transactionId: BigInt(appended[0]!.transaction_id!),
      nextExpectedVersion: appended[appended.length - 1]!.stream_version!,
    };
  }
}

/** The head versions `expected` accepts, as [low, high]; high null: no upper bound. */
function expectedRange(expected: ExpectedVersion): [number, number | null] {
  if (expected === 'any') return [0, null];
  if (expected === 'no_stream') return [0, 0];
  if (expected === 'stream_exists') return [1, null];
  if (!Number.isInteger(expected) || expected < 0 || expected > 2_147_483_647) {
    throw new TypeError(`appendEvents: expectedVersion must be an integer from 0, 'any', 'no_stream' or 'stream_exists', got ${String(expected)}`);
  }
  return [expected, expected];
}

function checkedEvent(event: NewEvent, index: number): Required<NewEvent> {
  if (typeof event?.type !== 'string' || event.type === '') {
    throw new TypeError(`appendEvents: event ${index}: type must be a non-empty string`);
  }
  if (event.data === undefined) throw new TypeError(`appendEvents: event ${index} (${event.type}): data is missing`);
  const schemaVersion = event.schemaVersion ?? 1;
  if (!Number.isInteger(schemaVersion) || schemaVersion < 1) {
    throw new TypeError(`appendEvents: event ${index} (${event.type}): schemaVersion must be a positive integer`);
  }
  return { type: event.type, data: event.data, metadata: event.metadata ?? {}, schemaVersion };
}

/** A pool runs each statement as its own transaction; a client may be inside the caller's. */
function isPool(db: Queryable): boolean {
  return 'totalCount' in db && typeof (db as { connect?: unknown }).connect === 'function';
}

function isStreamVersionTaken(error: unknown): boolean {
  return sqlstateOf(error) === '23505' && (error as { constraint?: unknown }).constraint === STREAM_VERSION_KEY;
}
