import type { Logger } from '../log.js';
import { errorMessage } from '../errors.js';
import type { Queryable } from '../store/queryable.js';
import { readWakeFirer } from '../store/wakeup.js';

/**
 * Writers notify only while a daemon waits, and then only the first of them, at its commit
 * (migration 0013). Should that writer roll back, or stay open, while others commit behind it
 * silently and no writer comes after them, no notification comes at all: the runners would sleep
 * until `pollInterval` with events to apply, or without seeing that an open transaction holds
 * them back. So the daemon looks at that writer every `intervalMs`: rolled back, or still open at
 * two looks in a row, it wakes the runners itself, once per such writer. A writer that commits
 * brings its own notification, and the watch does nothing.
 */
export interface WakeWatch {
  /** Stops looking; resolves once a look in flight has ended. */
  stop(): Promise<void>;
}

export interface WakeWatchOptions {
  db: Queryable;
  intervalMs: number;
  /** Wakes every runner, as a notification does. */
  wake: () => void;
  logger: Logger;
}

export function startWakeWatch({ db, intervalMs, wake, logger }: WakeWatchOptions): WakeWatch {
  /** The writer seen open at the last look, and the last one the runners were woken for. */
  let openAtLastLook: string | undefined;
  let wokenFor: string | undefined;
  let failing = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let looking: Promise<void> = Promise.resolve();

  async function look(): Promise<void> {
    try {
      const { firer, status } = await readWakeFirer(db);
      failing = false;
      const unanswered = status === 'aborted' || (status === 'in progress' && openAtLastLook === firer);
      openAtLastLook = status === 'in progress' ? firer : undefined;
      if (unanswered && wokenFor !== firer) {
        wokenFor = firer;
        logger.debug({ firer, status }, 'wakeup.unanswered');
        wake();
      }
    } catch (error) {
      // The runners report a lost database themselves; say it once here, and keep looking.
      if (!failing) logger.warn({ err: errorMessage(error) }, 'wakeup.watch_failed');
      failing = true;
    }
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      looking = look().finally(schedule);
    }, intervalMs);
    timer.unref();
  }

  schedule();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await looking;
    },
  };
}
