import type pg from 'pg';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { createListener, type Listener } from '../store/createListener.js';
import { PROGRESS_CHANNEL } from '../store/names.js';
import { createProgressWaiters, type ProgressWaiters } from './progressWaiters.js';

export interface ProgressListenerOptions {
  /** Where the checks query. */
  db: pg.Pool;
  /** A direct connection to LISTEN on: a URL, or an existing pool's connection settings. */
  url: string | pg.ClientConfig;
  /** Milliseconds a connect, the LISTEN or a probe may take. */
  timeout: number;
  probeInterval: number;
  /** @defaultValue a logger that writes nothing */
  logger?: Logger;
}

export interface ProgressListener {
  waiters: ProgressWaiters;
  /** Ends the waits in progress (as `closed`) and the listening connection. */
  close(): Promise<void>;
}

/**
 * Waiters fed by a LISTEN of their own on `projd_progress`, for waits outside the daemon (the
 * library's `waitFor`, `projd wait`). Resolves once LISTEN is in place, so that a wait's one
 * check happens after it.
 */
export async function listenForProgress(options: ProgressListenerOptions): Promise<ProgressListener> {
  const waiters = createProgressWaiters({ db: options.db, missingProjection: 'error' });
  const listener: Listener = createListener({
    url: options.url,
    timeout: options.timeout,
    probeInterval: options.probeInterval,
    logger: options.logger ?? silentLogger(),
    channels: { [PROGRESS_CHANNEL]: (payload) => waiters.notice(payload) },
    onReconnected: () => waiters.recheck(),
  });
  await listener.start();
  return {
    waiters,
    async close() {
      waiters.close();
      await listener.stop();
    },
  };
}
