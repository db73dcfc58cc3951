import net from 'node:net';
import type pg from 'pg';
import pgListen, { type Subscriber } from 'pg-listen';
import type { Logger } from '../log.js';
import { jitteredBackoff } from '../backoff.js';
import { errorMessage } from '../errors.js';
import { connectionSettings, daemonApplicationName } from './connect.js';

export interface ListenerOptions {
  /**
   * A direct connection: LISTEN does not survive a transaction-mode pooler. A URL, or the
   * settings of an existing pool's connections (the library's waiters listen beside a pool).
   */
  url: string | pg.ClientConfig;
  /** Milliseconds a connect, the LISTEN or a probe may take before the connection counts as lost. */
  timeout: number;
  /** Milliseconds between probes of the connection with a trivial query. */
  probeInterval: number;
  logger: Logger;
  /**
   * The channels to LISTEN on, each with what to do with a notification's payload (the events
   * channel: new events may have committed, only a hint; the progress channel: a checkpoint moved).
   */
  channels: Readonly<Record<string, (payload: string) => void>>;
  /** LISTEN is in place again after a reconnect; notifications sent meanwhile were lost. */
  onReconnected(): void;
}

export interface Listener {
  start(): Promise<void>;
  stop(): Promise<void>;
}

// Reconnect delays: the first attempt at once, then 100 ms doubling to a 5 s cap, drawn from
// the upper half at random so that daemons cut off together do not reconnect in step. Never
// gives up: the poll interval keeps projections moving meanwhile. The cap also bounds how long
// a stop during an outage leaves the process running: pg-listen's wait cannot be cancelled.
const RECONNECT_BASE_MS = 100;
const RECONNECT_CAP_MS = 5_000;
// On stop, how long the server gets to close the connection before its socket is destroyed;
// a frozen server never would.
const CLOSE_GRACE_MS = 1_000;

/** The wait after the `failed`th attempt in a row (1, 2, …) failed. */
function reconnectDelay(failed: number): number {
  return jitteredBackoff(failed, RECONNECT_BASE_MS, RECONNECT_CAP_MS);
}

/** Thrown into pg-listen's reconnect loop to end it once its subscriber is retired. */
class SubscriberRetired extends Error {
  constructor() {
    super('listener subscriber retired');
  }
}

/** One pg-listen subscriber and what the listener knows of it. */
interface Connection {
  subscriber: Subscriber;
  /** Replaced or stopped: whatever pg-listen still does with it is wound down. */
  retired: boolean;
  /** LISTEN is in place: a later 'connected' is a reconnect. */
  listening: boolean;
  /** pg-listen's reconnect attempt in progress, for the logs. */
  attempt: number;
}

/**
 * LISTEN on `channels` over pg-listen, which reconnects and LISTENs again by itself,
 * and probes the connection (`paranoidChecking`) with a query that times out, so a frozen
 * server or a half-open socket is found within `probeInterval + timeout`.
 *
 * It is wrapped for what pg-listen does not do: its reconnect loop ignores `close()` (a retired
 * subscriber throws out of it), a failed LISTEN after a reconnect leaves it connected but deaf
 * (the listener replaces the subscriber), and closing a connection to a frozen server waits for
 * ever (every socket is tracked and destroyed after a grace period). The first connect fails
 * `start()`: a `database.listenUrl` that does not work right after the pool's check is a
 * configuration error more often than a blip.
 */
export function createListener(options: ListenerOptions): Listener {
  const { logger } = options;
  const sockets = new Set<net.Socket>();
  const settings =
    typeof options.url === 'string'
      ? connectionSettings({ url: options.url, connectTimeout: options.timeout, applicationName: daemonApplicationName('listener') })
      : { ...options.url, connectionTimeoutMillis: options.timeout };
  const clientConfig = {
    ...settings,
    // The probe, and the LISTEN after a reconnect, fail instead of waiting on a frozen server.
    query_timeout: options.timeout,
    // Every socket this listener's clients open, so that stop() can destroy what will not close.
    stream: () => {
      const socket = new net.Socket();
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      return socket;
    },
  };
  let current: Connection | undefined;
  let stopped = false;
  let replacing: Promise<void> | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let wakeRetry: () => void = () => undefined;

  async function open(): Promise<Connection> {
    // pg-listen is CommonJS: from ESM its function is the module itself, typed as `.default`.
    const subscriber = pgListen.default(clientConfig, {
      paranoidChecking: options.probeInterval,
      // The defaults give up after 3 s of failed attempts.
      retryLimit: Infinity,
      retryTimeout: Infinity,
      retryInterval: (failedBefore) => {
        if (connection.retired) throw new SubscriberRetired();
        const retryInMs = Math.round(reconnectDelay(failedBefore + 1));
        logger.warn({ attempt: failedBefore + 1, retryInMs }, 'listener.reconnecting');
        return retryInMs;
      },
      // Anyone may NOTIFY a channel: each channel's handler reads its payload as it sees fit.
      parse: (payload) => payload,
    });
    const connection: Connection = { subscriber, retired: false, listening: false, attempt: 0 };

    subscriber.events.on('notification', ({ channel, payload }) => {
      if (Object.hasOwn(options.channels, channel)) options.channels[channel]!(typeof payload === 'string' ? payload : '');
    });
    subscriber.events.on('reconnect', (attempt) => {
      // Thrown before the attempt makes a client; the loop ends and reports an 'error'.
      if (connection.retired) throw new SubscriberRetired();
      connection.attempt = attempt;
      // pg-listen keeps the cause to itself (DEBUG=pg-listen:* prints it).
      if (attempt === 1 && connection.listening) logger.warn('listener.disconnected');
    });
    subscriber.events.on('connected', () => {
      if (connection.retired) {
        // A reconnect that was under way when it was retired: end what it made.
        void subscriber.close().catch(() => undefined);
        return;
      }
      if (!connection.listening) return; // the first connect: start() LISTENs and reports
      logger.info({ attempt: connection.attempt }, 'listener.reconnected');
      options.onReconnected();
    });
    // pg-listen reports here that a reconnect failed (its LISTEN did, or a retired loop ended),
    // and it will not try again while the new connection passes its probes.
    subscriber.events.on('error', (error) => {
      if (connection.retired || !connection.listening) {
        // Retired, or lost while open() was still at it, which then fails.
        void retire(connection);
        return;
      }
      logger.warn({ err: errorMessage(error) }, 'listener.disconnected');
      replace(connection);
    });

    try {
      await subscriber.connect();
      for (const channel of Object.keys(options.channels)) await subscriber.listenTo(channel);
      if (connection.retired) throw new SubscriberRetired();
    } catch (error) {
      void retire(connection);
      throw error;
    }
    connection.listening = true;
    return connection;
  }

  /** Stops using `connection`; resolves once its client has ended, which a frozen server delays. */
  function retire(connection: Connection): Promise<void> {
    connection.retired = true;
    if (current === connection) current = undefined;
    return connection.subscriber.close().catch(() => undefined);
  }

  /** Swaps a subscriber pg-listen gave up on for a new one, trying for ever. */
  function replace(connection: Connection): void {
    void retire(connection);
    if (stopped || replacing) return;
    replacing = (async () => {
      for (let attempt = 1; !stopped; attempt += 1) {
        await new Promise<void>((resolve) => {
          wakeRetry = resolve;
          retryTimer = setTimeout(resolve, reconnectDelay(attempt));
        });
        if (stopped) break;
        try {
          const next = await open();
          if (stopped) {
            void retire(next);
            break;
          }
          current = next;
          logger.info({ attempt }, 'listener.reconnected');
          options.onReconnected();
          break;
        } catch (error) {
          if (!stopped) logger.warn({ attempt, err: errorMessage(error) }, 'listener.reconnecting');
        }
      }
      replacing = undefined;
    })();
  }

  return {
    async start() {
      current = await open();
    },
    async stop() {
      stopped = true;
      clearTimeout(retryTimer);
      wakeRetry();
      const connection = current;
      if (connection) {
        let grace: NodeJS.Timeout | undefined;
        await Promise.race([
          retire(connection),
          new Promise<void>((resolve) => (grace = setTimeout(resolve, CLOSE_GRACE_MS))),
        ]);
        clearTimeout(grace);
      }
      // Whatever is left: a connection to a frozen server, or an attempt still connecting.
      for (const socket of sockets) socket.destroy();
      await replacing;
    },
  };
}
