/**
 * The types a projection module sees. `projection/` never imports `store/`: handlers
 * get a `ProjectionDb`, which the store implements with the batch's transaction.
 */

/** One stored event, as a handler receives it. 64-bit values are `bigint`, so no precision is lost. */
export interface ProjdEvent<Data = any, Metadata = Record<string, unknown>> {
  /** Global position, assigned at insert. Unique, but not the delivery order. */
  position: bigint;
  /** The writing transaction's id; delivery order is `(transactionId, position)`. */
  transactionId: bigint;
  streamId: string;
  /** 1, 2, 3, … within the stream; delivered in this order. */
  streamVersion: number;
  type: string;
  data: Data;
  metadata: Metadata;
  /** Payload schema version, for upcasters. @defaultValue 1 */
  schemaVersion: number;
  createdAt: Date;
}

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

export type EventHandler<Data = any> = (event: ProjdEvent<Data>, db: ProjectionDb) => Promise<void> | void;

/** What a module passes to `defineProjection`. */
export interface ProjectionDefinition {
  /** Unique among loaded projections; `[a-z][a-z0-9_]*`. */
  name: string;
  /** Bump to rebuild: the read model is reset and rebuilt from position 0. */
  version: number;
  /** SQL run once per version before the first batch (e.g. `create table if not exists …`). */
  setup?: string | readonly string[];
  /** SQL that clears the read model, run when the projection is rebuilt. */
  reset?: string | readonly string[];
  /** One handler per event type; events of other types are never fetched. */
  handlers: Record<string, EventHandler>;
  /**
   * An event whose handler keeps failing (it throws, or PostgreSQL refuses its data) is
   * `park`ed in `projd.failed_events` while the projection goes on, or the projection `stop`s
   * right before it until `projd failed retry` or `skip`. Transient failures are always retried.
   * @defaultValue `projections.onError` in the config (`park`)
   */
  onError?: 'park' | 'stop';
  /** Attempts at a failing event before it is parked or the projection stops. @defaultValue `projections.maxAttempts` (3) */
  maxAttempts?: number;
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
  readonly handlers: ReadonlyMap<string, EventHandler>;
  /** The event types it handles, sorted: the filter used when reading events. */
  readonly eventTypes: readonly string[];
  /** Unset: the config's `projections.onError` applies. */
  readonly onError?: 'park' | 'stop';
  /** Unset: the config's `projections.maxAttempts` applies. */
  readonly maxAttempts?: number;
  /** The file it was loaded from, for messages; absent for projections built in code. */
  readonly source?: string;
}
