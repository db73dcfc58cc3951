// A leaf module, like errors.ts: the store reads events and projections handle them, and
// neither of the two imports the other.

/**
 * One stored event, as a handler receives it. 64-bit values are `bigint`, so no precision is lost.
 * `data` is `unknown` unless the handler says what it holds: by a type map given to
 * `defineProjection<Events>`, or by annotating the parameter (`event: ProjdEvent<{ amount: number }>`).
 */
export interface ProjdEvent<Data = unknown, Metadata = Record<string, unknown>> {
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
