import type pg from 'pg';
import type { BatchScanOptions } from '../../store/batchScan.js';
import { readBatch, type Batch } from '../../store/readBatch.js';
import { readBatchBounds, type BatchBounds } from '../../store/readBatchBounds.js';
import type { ApplyForm } from './pickForm.js';

/**
 * A form's first read of the batch, sent with the batch's opening on the guess that the
 * checkpoint is still where this runner left it: the read then costs no round trip of its own.
 * Used only when the checkpoint read under the lock says the guess was right; the statement
 * runs after the opening's, so it reads as late a snapshot as a read sent after it would.
 */
export type EarlyRead =
  | { form: 'sqlBatch'; after: BatchScanOptions['after']; bounds: Promise<BatchBounds> }
  | { form: 'perEvent' | 'moduleBatch'; after: BatchScanOptions['after']; batch: Promise<Batch> };

/** Sends `form`'s read of the batch after `scan.after` now, on the batch's connection. */
export function sendEarlyRead(client: pg.ClientBase, form: ApplyForm, scan: BatchScanOptions): EarlyRead {
  const early: EarlyRead =
    form === 'sqlBatch'
      ? { form, after: scan.after, bounds: readBatchBounds(client, scan) }
      : { form, after: scan.after, batch: readBatch(client, scan) };
  // A wrong guess, or an opening that failed, leaves it unread: it must not reject unhandled.
  (early.form === 'sqlBatch' ? early.bounds : early.batch).catch(() => undefined);
  return early;
}
