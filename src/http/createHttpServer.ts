import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { UserError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { RunnerSnapshot } from '../runner/createRunner.js';
import type { Metrics } from './createMetrics.js';
import { findNotCaughtUp, findStuckLoops, findVersionBehind } from './health.js';

export interface HttpServerOptions {
  host: string;
  /** 0 lets the operating system pick a free port; the bound one is logged as `http.listening`. */
  port: number;
  metrics: Pick<Metrics, 'contentType' | 'render'>;
  /** What each runner knows right now; `/healthz` and `/readyz` never query PostgreSQL. */
  snapshots(): readonly RunnerSnapshot[];
  /** `health.stuckAfter`, in ms. */
  stuckAfter: number;
  /** `projections.pollInterval`, in ms. */
  pollInterval: number;
  logger: Logger;
  /** @defaultValue `Date.now` */
  now?: () => number;
}

export interface HttpServer {
  /** Listens; resolves once bound. @throws UserError when the address cannot be bound. */
  start(): Promise<void>;
  /** Stops listening and closes the connections kept alive. Idempotent. */
  stop(): Promise<void>;
  /** The bound address, once started. */
  address(): { host: string; port: number } | null;
}

/** Socket errors at `listen` that the user fixes in the config. */
const BIND_FAILURE_CODES = new Set(['EADDRINUSE', 'EACCES', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN']);

/** `/metrics`, `/healthz` (and its alias `/livez`) and `/readyz` over plain `node:http`. */
export function createHttpServer(options: HttpServerOptions): HttpServer {
  const { logger, now = Date.now } = options;
  const server = http.createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      logger.error({ err: error, url: request.url }, 'http.failed');
      if (!response.headersSent) send(response, 500, 'internal error\n');
      else response.destroy();
    });
  });
  let bound: { host: string; port: number } | null = null;
  let stopping: Promise<void> | undefined;

  async function handle(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      send(response, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
      return;
    }
    const { pathname } = new URL(request.url ?? '/', 'http://localhost');
    switch (pathname) {
      case '/metrics': {
        const text = await options.metrics.render();
        send(response, 200, text, { 'Content-Type': options.metrics.contentType });
        return;
      }
      case '/healthz':
      case '/livez': {
        const stuck = findStuckLoops(options.snapshots(), {
          now: now(),
          stuckAfter: options.stuckAfter,
          pollInterval: options.pollInterval,
        });
        if (stuck.length === 0) send(response, 200, 'ok\n');
        else send(response, 503, `stuck: ${stuck.join('; ')}\n`);
        return;
      }
      case '/readyz': {
        const snapshots = options.snapshots();
        const waiting = findNotCaughtUp(snapshots);
        const behind = findVersionBehind(snapshots);
        const reasons = [
          ...(waiting.length > 0 ? [`not caught up yet: ${waiting.join(', ')}`] : []),
          ...(behind.length > 0 ? [`the store holds a newer version of: ${behind.join(', ')}`] : []),
        ];
        if (reasons.length === 0) send(response, 200, 'ready\n');
        else send(response, 503, `${reasons.join('; ')}\n`);
        return;
      }
      default:
        send(response, 404, 'not found: try /metrics, /healthz, /livez or /readyz\n');
    }
  }

  return {
    async start() {
      await new Promise<void>((resolve, reject) => {
        const failed = (error: NodeJS.ErrnoException) => {
          if (error.code !== undefined && BIND_FAILURE_CODES.has(error.code)) {
            const where = `${options.host}:${options.port} (metrics.host, metrics.port; port 0 disables it)`;
            reject(new UserError(`cannot serve metrics on ${where}: ${errorMessage(error)}`, { cause: error }));
          } else {
            reject(error);
          }
        };
        server.once('error', failed);
        server.listen(options.port, options.host, () => {
          server.off('error', failed);
          resolve();
        });
      });
      server.on('error', (error) => logger.error({ err: error }, 'http.error'));
      bound = { host: options.host, port: (server.address() as AddressInfo).port };
      logger.info(bound, 'http.listening');
    },
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      return stopping;
    },
    address: () => bound,
  };
}

function send(response: http.ServerResponse, status: number, body: string, headers: http.OutgoingHttpHeaders = {}): void {
  response.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    ...headers,
  });
  response.end(body);
}
