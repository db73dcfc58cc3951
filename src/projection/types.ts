/**
 * The types a projection module sees. `projection/` never imports `store/`: handlers
 * get a `ProjectionDb`, which the store implements with the batch's transaction.
 */

import type { ProjdEvent } from '../event.js';
import type { TypeUpcasters } from './upcasters.js';

export type { TypeUpcasters };

/** Defined in a leaf module, so the store reads events without importing `projection/`. */
export type { ProjdEvent };

export interface QueryResult<Row> {
  rows: Row[];
  rowCount: number | null;
}

/**
 * The handler's connection: the batch's own transaction. Everything written through it
 * commits together with the projection's checkpoint, or not at all.
 */
export interface ProjectionDb {
  query<Row = Record<string, any>>(text: string, values?: readonly unknown[]): Promise<QueryResult<Row>>;
}

/**
 * A handler of events whose `data` is `Data`. Declared as a method so that a handler whose
 * parameter is annotated with a narrower type (`event: ProjdEvent<{ amount: number }>`) still
 * fits where `ProjdEvent<unknown>` is given: the annotation is the handler's own claim.
 */
export type EventHandler<Data = unknown> = {
  handle(event: ProjdEvent<Data>, db: ProjectionDb): Promise<void> | void;
}['handle'];

/**
 * A module's batch handler: one call per batch with the batch's events of the projection's
 * types, in delivery order, for set-based writes (one `unnest` upsert instead of one statement
 * per event). Its writes commit with the checkpoint, as a per-event handler's do.
 */
export type BatchHandler = (events: readonly ProjdEvent[], db: ProjectionDb) => Promise<void> | void;

/**
 * Lifts an event's `data` from the version it is keyed by to the next one. Given the data at
 * that version and the event (with `schemaVersion` at that version); returns the next data.
 */
export type Upcaster = (data: any, event: ProjdEvent) => unknown;

/** Event type → the type of its `data`, for `defineProjection<Events>`. */
export type EventDataMap = Record<string, unknown>;

/**
 * The `handlers` of a definition. A key is an exact event type, a prefix pattern
 * (`'account.*'`: every type that starts with `account.`) or `'*'` (every event). A key of
 * `Events` gets its data type; any other key (a pattern, a type outside the map) gets `unknown`.
 */
export type ProjectionHandlers<Events extends EventDataMap = EventDataMap> = {
  [Type in keyof Events | (string & {})]?: Type extends keyof Events ? EventHandler<Events[Type]> : EventHandler<unknown>;
};

/** What a module passes to `defineProjection`. */
export interface ProjectionDefinition<Events extends EventDataMap = EventDataMap> {
  /** Unique among loaded projections; `[a-z][a-z0-9_]*`. */
  name: string;
  /** Bump to rebuild: the read model is reset and rebuilt from position 0. */
  version: number;
  /** SQL run once per version before the first batch (e.g. `create table if not exists …`). */
  setup?: string | readonly string[];
  /** SQL that clears the read model, run when the projection is rebuilt. */
  reset?: string | readonly string[];
  /**
   * One handler per event type or pattern (`'account.*'`, `'*'`); events that none matches are
   * never fetched. An event goes to the handler of its exact type, else of the longest prefix
   * pattern that matches it, else to `'*'`.
   */
  handlers?: ProjectionHandlers<Events>;
  /**
   * The events the projection reads: exact types, `prefix.*` patterns or `'*'`.
   * Required without `handlers`; given with them, it lists every handler key.
   * @defaultValue the keys of `handlers`
   */
  eventTypes?: readonly string[];
  /**
   * SQL batch handler: statements run once per batch, in its transaction, reading the batch's
   * events in place as the relation `projd.batch_events()` (no event crosses the wire).
   * The fastest form; at most one of `batch` and `handleBatch`.
   */
  batch?: string | readonly string[];
  /** Module batch handler: one call per batch with its events (see `BatchHandler`). */
  handleBatch?: BatchHandler;
  /**
   * Event schema versions: per event type, one function per version it lifts `data` from,
   * `{ 'account.opened': { 1: (data) => ({ ...data, currency: 'EUR' }) } }`. The type's current
   * version is one past its highest key; handlers (per event and `handleBatch`) see `data`
   * lifted to it and `schemaVersion` set to it. An event above the current version, or below
   * the lowest key, fails like a handler's throw. Not with `batch` SQL, which reads events in
   * place. Changing upcasters does not rebuild: bump `version` to apply old events anew.
   */
  upcasters?: Record<string, Record<number, Upcaster>>;
  /**
   * Events per batch for this projection, instead of `projections.batchSize` (or
   * `projections.sqlBatchSize` for a SQL batch handler): a batch form costs about the same per
   * batch whatever its size, so larger batches pay off.
   * @defaultValue `projections.sqlBatchSize` (20000) with `batch`, else `projections.batchSize` (1000)
   */
  batchSize?: number;
  /**
   * An event whose handler keeps failing (it throws, or PostgreSQL refuses its data) is
   * `park`ed in `projd.failed_events` while the projection goes on, or the projection `stop`s
   * right before it until `projd failed retry` or `skip`. Transient failures are always retried.
   * @defaultValue `projections.onError` in the config (`park`)
   */
  onError?: 'park' | 'stop';
  /** Attempts at a failing event before it is parked or the projection stops. @defaultValue `projections.maxAttempts` (3) */
  maxAttempts?: number;
  /**
   * Splits the projection by stream into this many parts, each with its own checkpoint, applied
   * concurrently (by one daemon's pool, or by several daemons). Each stream's events stay in
   * order; events of different streams may be applied in any order. Changing it rebuilds the
   * projection. @defaultValue 1
   */
  partitions?: number;
}

/** Brand that marks the value `defineProjection` returns; a plain string so copies of projd agree. */
export const PROJECTION_KIND = 'projd.projection/1';

/** A checked projection, ready for the runner. */
export interface Projection {
  readonly kind: typeof PROJECTION_KIND;
  readonly name: string;
  readonly version: number;
  readonly setup: readonly string[];
  readonly reset: readonly string[];
  /**
   * By event type or pattern, as defined; look one up with `handlerFor`, which knows the
   * precedence. Empty when the projection has only a batch form.
   */
  readonly handlers: ReadonlyMap<string, EventHandler>;
  /** The types it reads, sorted: exact types and patterns, the filter used when reading events. */
  readonly eventTypes: readonly string[];
  /** The SQL batch handler's statements, run once per batch over `projd.batch_events()`. */
  readonly batch?: readonly string[];
  /** The module batch handler. */
  readonly handleBatch?: BatchHandler;
  /** By exact event type; absent or empty when every type's events are used as stored. */
  readonly upcasters?: ReadonlyMap<string, TypeUpcasters>;
  /** Unset: the config's `projections.sqlBatchSize` (with `batch`) or `projections.batchSize` applies. */
  readonly batchSize?: number;
  /** Unset: the config's `projections.onError` applies. */
  readonly onError?: 'park' | 'stop';
  /** Unset: the config's `projections.maxAttempts` applies. */
  readonly maxAttempts?: number;
  /** How many parts it is split into by `projd.stream_part(stream_id, partitions)`; 1 when not split. */
  readonly partitions: number;
  /** The file it was loaded from, for messages; absent for projections built in code. */
  readonly source?: string;
}
