import type pg from 'pg';
import type { Projection } from '../projection/types.js';
import { resetCheckpoint, selectCheckpoint } from '../store/checkpoints.js';
import { checkOut } from '../store/connect.js';
import { lockProjection } from '../store/locks.js';
import { selectionOf } from '../store/selection.js';

/** What `resetProjection` did. */
export type ResetResult =
  /** Cleared and back at position 0; `fromVersion` differs from the projection's on a pending version rebuild. */
  | { kind: 'reset'; fromVersion: number }
  /** No checkpoint yet: nothing to clear, the first batch sets it up. */
  | { kind: 'not_set_up' }
  /** The store holds a newer version, written by newer code: left alone. */
  | { kind: 'version_ahead'; storedVersion: number };

/**
 * Clears a projection for a replay, as one transaction under its lock: `reset`, then `setup`
 * (as a version rebuild does, so a `reset` that drops tables works), then the checkpoint back
 * to the start. The lock is waited for, so the reset falls between a daemon's batches, never
 * inside one; that daemon then goes on from the start, with the same version.
 */
export async function resetProjection(pool: pg.Pool, projection: Projection): Promise<ResetResult> {
  const { client, release } = await checkOut(pool);
  let broken: Error | undefined;
  try {
    await client.query('begin');
    await lockProjection(client, projection.name);
    const checkpoint = await selectCheckpoint(client, projection.name);
    let result: ResetResult;
    if (!checkpoint) {
      result = { kind: 'not_set_up' };
    } else if (checkpoint.version > projection.version) {
      result = { kind: 'version_ahead', storedVersion: checkpoint.version };
    } else {
      for (const sql of projection.reset) await client.query(sql);
      for (const sql of projection.setup) await client.query(sql);
      await resetCheckpoint(client, projection.name, projection.version, selectionOf(projection), projection.partitions);
      result = { kind: 'reset', fromVersion: checkpoint.version };
    }
    await client.query(result.kind === 'reset' ? 'commit' : 'rollback');
    return result;
  } catch (error) {
    await client.query('rollback').catch((rollbackError: Error) => {
      broken = rollbackError; // the connection is unusable: do not return it to the pool
    });
    throw error;
  } finally {
    release(broken);
  }
}
