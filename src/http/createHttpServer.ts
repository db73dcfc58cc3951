import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { DURATION_EXPECTED, settingDurationMs } from '../config/duration.js';
import { UserError, errorMessage, isUserError } from '../errors.js';
import type { Logger } from '../log.js';
import type { RunnerSnapshot } from '../runner/createRunner.js';
import type { Metrics } from './createMetrics.js';
import { parsePosition } from '../wait/parsePosition.js';
import type { ProgressWaiters } from '../wait/progressWaiters.js';
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
  /** `/wait`: the daemon's projections, and the waiters its listener feeds. Absent: 404. */
  wait?: { projections: readonly string[]; waiters: ProgressWaiters };
}

/** `/wait`'s timeout when the request names none. */
const DEFAULT_WAIT_TIMEOUT_MS = 5_000;

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
    const { pathname, searchParams } = new URL(request.url ?? '/', 'http://localhost');
    switch (pathname) {
      case '/wait':
        await handleWait(searchParams, response);
        return;
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
        send(response, 404, 'not found: try /metrics, /healthz, /livez, /readyz or /wait\n');
    }
  }

  /**
   * `GET /wait?projection=a&projection=b&position=P&timeout=5s`, a long poll: 200 once every
   * projection has applied or passed the event, 504 naming those still behind at the timeout.
   * A client that goes away ends its wait.
   */
  async function handleWait(params: URLSearchParams, response: http.ServerResponse): Promise<void> {
    const { wait } = options;
    if (!wait) {
      sendJson(response, 404, { error: 'not found: /wait is served by projd run' });
      return;
    }
    const projections = [...new Set(params.getAll('projection'))];
    const timeoutText = params.get('timeout');
    const timeoutMs = timeoutText === null ? DEFAULT_WAIT_TIMEOUT_MS : settingDurationMs(timeoutText);
    let position: bigint;
    try {
      position = parsePosition(params.get('position') ?? undefined, 'position');
    } catch (error) {
      sendJson(response, 400, { error: errorMessage(error) });
      return;
    }
    if (projections.length === 0) {
      sendJson(response, 400, { error: 'projection is missing: name one or more, /wait?projection=balances&position=42' });
      return;
    }
    if (timeoutMs === undefined) {
      sendJson(response, 400, { error: `timeout must be ${DURATION_EXPECTED}, got ${JSON.stringify(timeoutText)}` });
      return;
    }
    const unknown = projections.filter((name) => !wait.projections.includes(name));
    if (unknown.length > 0) {
      sendJson(response, 404, { error: `unknown projection: ${unknown.join(', ')}; this daemon runs ${wait.projections.join(', ')}` });
      return;
    }
    const gone = new AbortController();
    response.once('close', () => gone.abort());
    let outcome;
    try {
      outcome = await wait.waiters.wait({ projections, position, timeoutMs, signal: gone.signal });
    } catch (error) {
      if (!isUserError(error)) throw error;
      sendJson(response, 400, { error: errorMessage(error) });
      return;
    }
    switch (outcome.kind) {
      case 'applied':
        sendJson(response, 200, { position: String(position), projections, waitedMs: outcome.waitedMs });
        return;
      case 'timed_out':
        sendJson(response, 504, {
          error: `timed out after ${timeoutMs} ms`,
          position: String(position),
          committed: outcome.visible,
          behind: outcome.behind.map(({ projection, part, checkpoint }) => ({
            projection,
            part,
            checkpoint: checkpoint && `${checkpoint.era}/${checkpoint.transactionId}/${checkpoint.position}`,
          })),
        });
        return;
      case 'closed':
        sendJson(response, 503, { error: 'the daemon is stopping' });
        return;
      case 'aborted':
        return; // the client has gone
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

function sendJson(response: http.ServerResponse, status: number, body: unknown): void {
  send(response, status, `${JSON.stringify(body)}\n`, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
}

function send(response: http.ServerResponse, status: number, body: string, headers: http.OutgoingHttpHeaders = {}): void {
  response.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    ...headers,
  });
  response.end(body);
}
