import pg from 'pg';
import type { Logger } from '../log.js';
import { errorMessage } from '../errors.js';
import { daemonApplicationName } from './connect.js';
import { EVENTS_CHANNEL } from './names.js';

export interface ListenerOptions {
  /** A direct connection: LISTEN does not survive a transaction-mode pooler. */
  url: string;
  logger: Logger;
  /** A notification arrived: new events may have committed. Only a hint. */
  onNotification(): void;
  /** LISTEN is in place again after a reconnect; notifications sent meanwhile were lost. */
  onReconnected(): void;
}

export interface Listener {
  start(): Promise<void>;
  stop(): Promise<void>;
}

// Reconnect delays: 100 ms doubling to a 10 s cap, drawn from the upper half at random so
// that daemons restarted together do not reconnect in step. Never gives up: the interval
// fallback keeps projections moving meanwhile.
const RECONNECT_BASE_MS = 100;
const RECONNECT_CAP_MS = 10_000;
// A half-open TCP connection delivers nothing and reports no error; a cheap query now and
// then finds out.
const HEALTH_CHECK_MS = 30_000;

/**
 * LISTEN on the events channel over one dedicated connection, reconnecting forever.
 * Written over pg's own notification events rather than pg-listen, which gives up after
 * 3 s by default and does not retry a failed first connect.
 */
export function createListener(options: ListenerOptions): Listener {
  const { logger } = options;
  let client: pg.Client | null = null;
  let stopped = false;
  let reconnecting = false;
  let healthCheck: NodeJS.Timeout | undefined;
  let retryTimer: NodeJS.Timeout | undefined;

  async function connect(): Promise<void> {
    const next = new pg.Client({ connectionString: options.url, keepAlive: true, application_name: daemonApplicationName('listener') });
    next.on('notification', (message) => {
      if (message.channel === EVENTS_CHANNEL) options.onNotification();
    });
    next.on('error', (error) => lost(next, error));
    next.on('end', () => lost(next, new Error('connection ended')));
    try {
      await next.connect();
      await next.query(`listen ${EVENTS_CHANNEL}`);
    } catch (error) {
      next.removeAllListeners();
      next.on('error', () => undefined);
      await next.end().catch(() => undefined);
      throw error;
    }
    if (stopped) {
      next.removeAllListeners();
      await next.end().catch(() => undefined);
      return;
    }
    client = next;
  }

  function lost(which: pg.Client, error: unknown) {
    if (stopped || which !== client) return;
    client = null;
    which.removeAllListeners();
    which.on('error', () => undefined);
    which.end().catch(() => undefined);
    logger.warn({ err: errorMessage(error) }, 'listener.disconnected');
    void reconnect();
  }

  async function reconnect(): Promise<void> {
    if (reconnecting) return;
    reconnecting = true;
    for (let attempt = 1; !stopped; attempt += 1) {
      const cap = Math.min(RECONNECT_CAP_MS, RECONNECT_BASE_MS * 2 ** (attempt - 1));
      await new Promise<void>((resolve) => {
        retryTimer = setTimeout(resolve, cap / 2 + (Math.random() * cap) / 2);
      });
      if (stopped) break;
      try {
        await connect();
        logger.info({ attempt }, 'listener.reconnected');
        options.onReconnected();
        break;
      } catch (error) {
        logger.warn({ attempt, err: errorMessage(error) }, 'listener.reconnecting');
      }
    }
    reconnecting = false;
  }

  return {
    async start() {
      await connect();
      healthCheck = setInterval(() => {
        const current = client;
        current?.query('select 1').catch((error: unknown) => lost(current, error));
      }, HEALTH_CHECK_MS);
      healthCheck.unref();
    },
    async stop() {
      stopped = true;
      clearInterval(healthCheck);
      clearTimeout(retryTimer);
      const current = client;
      client = null;
      if (current) {
        current.removeAllListeners();
        current.on('error', () => undefined);
        await current.end().catch(() => undefined);
      }
    },
  };
}
