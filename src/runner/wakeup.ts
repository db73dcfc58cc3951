/**
 * The idle wait between passes, cut short by a wake-up (a notification, a reconnect, stop).
 * A wake-up that arrives while no one waits is kept, so a notification that lands during a
 * batch buys exactly one more pass; any number of them coalesce into that one.
 */
export interface Wakeup {
  wake(): void;
  /** Resolves after `ms`, or at once if woken since the last `clear()`. */
  wait(ms: number): Promise<void>;
  /** Forgets a pending wake-up: called as a pass starts, since that pass sees everything so far. */
  clear(): void;
}

export function createWakeup(): Wakeup {
  let pending = false;
  let release: (() => void) | null = null;

  return {
    wake() {
      if (release) release();
      else pending = true;
    },
    wait(ms) {
      if (pending) {
        pending = false;
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        const timer = setTimeout(done, ms);
        function done() {
          clearTimeout(timer);
          release = null;
          resolve();
        }
        release = done;
      });
    },
    clear() {
      pending = false;
    },
  };
}

/** Resolves after `ms`, or early when `signal` aborts. Never rejects. */
export function delay(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
