import type pg from 'pg';
import type { Projection, ProjectionDb } from '../projection/types.js';
import { resetCheckpoint, selectCheckpoint, storeCheckpoint } from '../store/checkpoints.js';
import { tryLockProjection } from '../store/locks.js';
import type { Position } from '../store/position.js';
import { START } from '../store/position.js';
import { readBatch } from '../store/readBatch.js';

export interface RunBatchOptions {
  pool: pg.Pool;
  projection: Projection;
  batchSize: number;
}

/** What one pass did. Expected outcomes are values; only faults are thrown. */
export type BatchResult =
  | { kind: 'locked_elsewhere' }
  /** The store holds a newer version of this projection, written by a newer daemon. */
  | { kind: 'version_ahead'; storedVersion: number }
  /** The checkpoint moved under us despite the lock: rolled back, nothing applied. */
  | { kind: 'conflict'; expected: Position }
  | {
      kind: 'done';
      /** Events handed to handlers and committed. */
      applied: number;
      /** Null when the checkpoint did not move (nothing new below the gate). */
      to: Position | null;
      /** The checkpoint after this pass, moved or not. */
      checkpoint: Position;
      full: boolean;
      heldBack: boolean;
      /** Set when this pass ran `setup`: `created` the first time, `rebuilt` after a version change. */
      setUp?: 'created' | 'rebuilt';
    };

/**
 * One batch as one transaction: lock the projection, read its checkpoint, read the next
 * events through the snapshot gate, apply them, and move the checkpoint with a
 * compare-and-swap. A crash at any point leaves the whole batch or none of it.
 */
export async function runBatch({ pool, projection, batchSize }: RunBatchOptions): Promise<BatchResult> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('begin');
    const result = await runInTransaction(client, projection, batchSize);
    await client.query(result.commit ? 'commit' : 'rollback');
    return result.result;
  } catch (error) {
    await client.query('rollback').catch((rollbackError: Error) => {
      broken = rollbackError; // the connection is unusable: do not return it to the pool
    });
    throw error;
  } finally {
    client.release(broken);
  }
}

async function runInTransaction(
  client: pg.PoolClient,
  projection: Projection,
  batchSize: number,
): Promise<{ commit: boolean; result: BatchResult }> {
  if (!(await tryLockProjection(client, projection.name))) {
    return { commit: false, result: { kind: 'locked_elsewhere' } };
  }

  let checkpoint = await selectCheckpoint(client, projection.name);
  let setUp: 'created' | 'rebuilt' | undefined;
  if (checkpoint && checkpoint.version > projection.version) {
    return { commit: false, result: { kind: 'version_ahead', storedVersion: checkpoint.version } };
  }
  if (!checkpoint || checkpoint.version < projection.version) {
    // A rebuild tears down (reset) before building up (setup), so a reset that drops a
    // table and a setup that creates it again both work.
    if (checkpoint) for (const sql of projection.reset) await client.query(sql);
    for (const sql of projection.setup) await client.query(sql);
    await resetCheckpoint(client, projection.name, projection.version);
    setUp = checkpoint ? 'rebuilt' : 'created';
    checkpoint = { version: projection.version, ...START };
  }

  const batch = await readBatch(client, { after: checkpoint, eventTypes: projection.eventTypes, limit: batchSize });
  const done = { kind: 'done' as const, full: batch.full, heldBack: batch.heldBack, setUp };
  if (!batch.scannedTo) {
    return { commit: setUp !== undefined, result: { ...done, applied: 0, to: null, checkpoint } };
  }

  const db = handlerDb(client);
  for (const event of batch.events) {
    // readBatch only returns types the projection handles.
    await projection.handlers.get(event.type)!(event, db);
  }

  if (!(await storeCheckpoint(client, projection.name, checkpoint, batch.scannedTo))) {
    return { commit: false, result: { kind: 'conflict', expected: checkpoint } };
  }
  return {
    commit: true,
    result: { ...done, applied: batch.events.length, to: batch.scannedTo, checkpoint: batch.scannedTo },
  };
}

/** The batch's transaction as handlers see it: queries only, no release, no end. */
function handlerDb(client: pg.PoolClient): ProjectionDb {
  return {
    async query<Row>(text: string, values?: readonly unknown[]) {
      const result = await client.query(text, values as unknown[] | undefined);
      return { rows: result.rows as Row[], rowCount: result.rowCount };
    },
  };
}
