import { afterEach, describe, expect, it } from 'vitest';
import { createHttpServer, type HttpServer } from '../../src/http/createHttpServer.js';
import { isUserError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import type { RunnerSnapshot } from '../../src/runner/createRunner.js';
import { runnerSnapshot } from '../helpers/fixtures.js';

const NOW = 1_000_000_000;

function snapshot(overrides: Partial<RunnerSnapshot> = {}): RunnerSnapshot {
  return runnerSnapshot(NOW, overrides);
}

let servers: HttpServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((server) => server.stop()));
  servers = [];
});

async function start(snapshots: RunnerSnapshot[], port = 0): Promise<{ server: HttpServer; url: string }> {
  const server = createHttpServer({
    host: '127.0.0.1',
    port,
    metrics: { contentType: 'text/plain; version=0.0.4; charset=utf-8', render: async () => 'projd_events_head_position 7\n' },
    snapshots: () => snapshots,
    stuckAfter: 60_000,
    pollInterval: 5_000,
    logger: silentLogger(),
    now: () => NOW,
  });
  servers.push(server);
  await server.start();
  return { server, url: `http://127.0.0.1:${server.address()!.port}` };
}

describe('createHttpServer', () => {
  it('serves /metrics in the registry content type', async () => {
    const { url } = await start([snapshot()]);
    const response = await fetch(`${url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(await response.text()).toBe('projd_events_head_position 7\n');
  });

  it('answers /healthz and /livez with 200 while loops move, 503 naming a stuck one', async () => {
    const snapshots = [snapshot(), snapshot({ name: 'deposits' })];
    const { url } = await start(snapshots);
    for (const path of ['/healthz', '/livez']) expect((await fetch(`${url}${path}`)).status).toBe(200);

    snapshots[1] = snapshot({ name: 'deposits', inBatch: true, lastPassAt: NOW - 61_000 });
    const response = await fetch(`${url}/healthz`);
    expect(response.status).toBe(503);
    expect(await response.text()).toBe('stuck: deposits: batch running for 61s\n');
  });

  it('answers /readyz with 503 until every projection has caught up once', async () => {
    const snapshots = [snapshot({ caughtUpOnce: false, state: 'catching_up' })];
    const { url } = await start(snapshots);
    const before = await fetch(`${url}/readyz`);
    expect(before.status).toBe(503);
    expect(await before.text()).toBe('not caught up yet: balances\n');
    snapshots[0] = snapshot();
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
  });

  it('answers /readyz with 503 while the store holds a newer version of a projection than this daemon', async () => {
    const snapshots = [snapshot({ name: 'a', caughtUpOnce: false }), snapshot({ state: 'version_ahead' })];
    const { url } = await start(snapshots);
    const response = await fetch(`${url}/readyz`);
    expect(response.status).toBe(503);
    expect(await response.text()).toBe('not caught up yet: a; the store holds a newer version of: balances (version 1)\n');
  });

  it('answers 404 for other paths and 405 for other methods', async () => {
    const { url } = await start([snapshot()]);
    expect((await fetch(`${url}/`)).status).toBe(404);
    expect((await fetch(`${url}/metrics/extra`)).status).toBe(404);
    const post = await fetch(`${url}/metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expect((await fetch(`${url}/healthz?verbose=1`)).status).toBe(200);
  });

  it('fails to start with a user error naming the keys when the port is taken', async () => {
    const { server } = await start([snapshot()]);
    const port = server.address()!.port;
    const error = await start([snapshot()], port).then(
      () => expect.fail('started on a taken port'),
      (thrown: unknown) => thrown,
    );
    expect(isUserError(error)).toBe(true);
    expect((error as Error).message).toBe(
      `cannot serve metrics on 127.0.0.1:${port} (metrics.host, metrics.port; port 0 disables it): listen EADDRINUSE: address already in use 127.0.0.1:${port}`,
    );
  });
});
