import type pg from 'pg';
import { checkOut } from '../store/connect.js';
import { sendProgressNotices, type ProgressNotice } from '../store/progressNotice.js';

/**
 * Tells waiters (`waitFor`, `GET /wait`) on `projd_progress` where each part's checkpoint
 * stands, after its batch has committed. One send at a time, on a pooled connection: what
 * commits meanwhile goes out with the next send, the latest checkpoint of each part only, so
 * a burst of batches costs a few notifying transactions, not one each.
 */
export interface ProgressAnnouncer {
  /** A batch moved this part's checkpoint and committed. */
  announce(notice: ProgressNotice): void;
  /** Resolves once nothing is left to send. */
  settled(): Promise<void>;
}

export function createProgressAnnouncer(pool: pg.Pool, onError: (error: unknown) => void): ProgressAnnouncer {
  const pending = new Map<string, ProgressNotice>();
  let sending: Promise<void> | undefined;

  async function sendAll(): Promise<void> {
    while (pending.size > 0) {
      const notices = [...pending.values()];
      pending.clear();
      // A waiter that misses a notice looks again at the next one, or times out saying so.
      await sendOnce(notices).catch(onError);
    }
    sending = undefined;
  }

  async function sendOnce(notices: ProgressNotice[]): Promise<void> {
    const { client, release } = await checkOut(pool);
    try {
      await sendProgressNotices(client, notices);
      release();
    } catch (error) {
      release(error as Error); // it may be left inside the transaction: never reuse it
      throw error;
    }
  }

  return {
    announce(notice) {
      pending.set(`${notice.projection}/${notice.part}`, notice);
      sending ??= sendAll();
    },
    async settled() {
      await sending;
    },
  };
}
