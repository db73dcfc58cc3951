import type pg from 'pg';
import { checkOut } from '../store/connect.js';
import { comparePositions, type Position } from '../store/position.js';
import { readBatch, type Batch, type ReadBatchOptions } from '../store/readBatch.js';

/**
 * Reads a projection's next batch while the current one applies, so that the next pass need
 * not wait for its read. Safe because a batch is read below the snapshot gate: the events
 * there are final, so a batch read earlier is the batch a later read returns, as long as it
 * starts where the checkpoint stands and is full (one that is not full ends below an older
 * gate, and would miss what committed since).
 */
export interface Prefetch {
  /**
   * Starts reading the `limit` events after `after`, on a pooled connection of its own: only
   * when one is free now, so that a prefetch never makes another projection's batch wait.
   */
  start(pool: pg.Pool, after: Position, options: PrefetchOptions): void;
  /**
   * The prefetched batch, once read, when it starts exactly at `after` (the checkpoint read
   * under the lock), was read with `limit`, and is full; else undefined. Either way it is used up.
   */
  take(after: Position, limit: number): Promise<Batch | undefined>;
  /** Resolves once no read is in flight. */
  settled(): Promise<void>;
}

export interface PrefetchOptions extends Omit<ReadBatchOptions, 'after'> {
  /** The read's statement timeout: a read nobody waits for must not hold a connection for ever. */
  timeoutMs: number;
}

interface Pending {
  after: Position;
  limit: number;
  /** Undefined when the read failed: the pass then reads for itself. */
  batch: Promise<Batch | undefined>;
}

/** A runner's prefetch: one read ahead at most. Only the module batch form uses it (see `apply/moduleBatch.ts`). */
export function createPrefetch(): Prefetch {
  let pending: Pending | undefined;
  let reading: Promise<unknown> = Promise.resolve();
  return {
    start(pool, after, { timeoutMs, ...options }) {
      const free = pool.waitingCount === 0 && (pool.idleCount > 0 || pool.totalCount < (pool.options.max ?? 10));
      if (!free) return;
      const batch = readAhead(pool, { ...options, after }, timeoutMs).catch(() => undefined);
      pending = { after, limit: options.limit, batch };
      reading = batch;
    },
    async take(after, limit) {
      const taken = pending;
      pending = undefined;
      if (!taken || taken.limit !== limit || comparePositions(taken.after, after) !== 0) return undefined;
      const batch = await taken.batch;
      return batch?.full ? batch : undefined;
    },
    async settled() {
      await reading;
    },
  };
}

/** One read in a transaction of its own, bounded by a statement timeout; pipelined, one round trip. */
async function readAhead(pool: pg.Pool, options: ReadBatchOptions, timeoutMs: number): Promise<Batch> {
  const { client, release } = await checkOut(pool);
  try {
    const [, batch] = await Promise.all([
      client.query(`begin; set local statement_timeout = ${timeoutMs}`),
      readBatch(client, options),
      client.query('commit'),
    ]);
    release();
    return batch;
  } catch (error) {
    release(error as Error); // it may be left inside the transaction: never reuse it
    throw error;
  }
}
