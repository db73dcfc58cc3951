import type pg from 'pg';
import { storeCheckpoint } from '../store/checkpoints.js';
import { blockProjection, recordFailure, type Failure } from '../store/failedEvents.js';
import type { Position } from '../store/position.js';
import { WHOLE, type Part } from '../store/part.js';
import { readBatch, type Batch } from '../store/readBatch.js';

/** The event to park (or halt on) instead of applying it: it failed `attempts` times. */
export interface Park {
  position: bigint;
  failure: Failure;
  attempts: number;
  policy: 'park' | 'stop';
}

export type ParkOutcome =
  | { kind: 'parked'; id: bigint; policy: 'park' | 'stop'; batch: Batch }
  /** The event is not the next one any more: nothing was parked. */
  | { kind: 'not_first' }
  | { kind: 'conflict'; expected: Position };

/**
 * Records the failing event in `projd.failed_events` when it is still the projection's next
 * event. `park` moves the checkpoint past it; `stop` leaves the checkpoint before it and halts
 * the projection on it.
 */
export async function parkFirstEvent(
  client: pg.ClientBase,
  projection: { name: string; eventTypes: readonly string[] },
  checkpoint: Position,
  park: Park,
  part: Part = WHOLE,
): Promise<ParkOutcome> {
  const batch = await readBatch(client, { after: checkpoint, eventTypes: projection.eventTypes, limit: 1, part });
  const first = batch.events[0];
  if (!batch.scannedTo || first?.position !== park.position) return { kind: 'not_first' };
  const id = await recordFailure(client, projection.name, first.position, park.failure, park.attempts);
  if (park.policy === 'stop') {
    await blockProjection(client, projection.name, id, park.failure.message, part.index);
    return { kind: 'parked', id, policy: 'stop', batch };
  }
  if (!(await storeCheckpoint(client, projection.name, checkpoint, batch.scannedTo, part.index))) {
    return { kind: 'conflict', expected: checkpoint };
  }
  return { kind: 'parked', id, policy: 'park', batch };
}
