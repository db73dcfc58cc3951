/**
 * A place in the delivery order. Events are delivered in `(era, transactionId, position)`
 * order, which is what makes a late-committing event (low position, high transaction id)
 * safe. The era only changes when a store is restored into another cluster.
 */
export interface Position {
  era: number;
  transactionId: bigint;
  position: bigint;
}

export const START: Position = Object.freeze({ era: 0, transactionId: 0n, position: 0n });

export function comparePositions(a: Position, b: Position): number {
  if (a.era !== b.era) return a.era < b.era ? -1 : 1;
  if (a.transactionId !== b.transactionId) return a.transactionId < b.transactionId ? -1 : 1;
  if (a.position !== b.position) return a.position < b.position ? -1 : 1;
  return 0;
}

/** `era/transactionId/position`, for logs and messages. */
export function positionText(position: Position): string {
  return `${position.era}/${position.transactionId}/${position.position}`;
}

/** The three query parameters of a position, in order: `$n::integer, $n+1::xid8, $n+2::bigint`. */
export function positionParams(position: Position): [number, string, string] {
  return [position.era, position.transactionId.toString(), position.position.toString()];
}
