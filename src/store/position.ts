/**
 * A place in the delivery order. Events are delivered in `(transactionId, position)` order,
 * which is what makes a late-committing event (low position, high transaction id) safe.
 */
export interface Position {
  transactionId: bigint;
  position: bigint;
}

export const START: Position = Object.freeze({ transactionId: 0n, position: 0n });

export function comparePositions(a: Position, b: Position): number {
  if (a.transactionId !== b.transactionId) return a.transactionId < b.transactionId ? -1 : 1;
  if (a.position !== b.position) return a.position < b.position ? -1 : 1;
  return 0;
}
