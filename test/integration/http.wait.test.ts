import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createHttpServer, type HttpServer } from '../../src/http/createHttpServer.js';
import { silentLogger } from '../../src/log.js';
import { appendEvents } from '../../src/store/appendEvents.js';
import { CHECKPOINTS_TABLE } from '../../src/store/names.js';
import { createProgressWaiters, type ProgressWaiters } from '../../src/wait/progressWaiters.js';
import { createTestDatabase } from '../helpers/database.js';
import { waitFor } from '../helpers/waitFor.js';

// `/wait` in process, on a real database, with nobody applying events: a wait lasts until the
// client goes or the server stops.
const db = await createTestDatabase();

let server: HttpServer | undefined;
let waiters: ProgressWaiters;

afterEach(async () => {
  waiters?.close();
  await server?.stop();
  server = undefined;
});

afterAll(() => db.drop());

async function start(): Promise<string> {
  waiters = createProgressWaiters({ db: db.pool, missingProjection: 'wait' });
  server = createHttpServer({
    host: '127.0.0.1',
    port: 0,
    metrics: { contentType: 'text/plain', render: async () => '' },
    snapshots: () => [],
    stuckAfter: 60_000,
    pollInterval: 5_000,
    logger: silentLogger(),
    wait: { projections: ['balances'], waiters },
  });
  await server.start();
  return `http://127.0.0.1:${server.address()!.port}`;
}

async function unappliedPosition(): Promise<bigint> {
  await db.pool.query(`insert into ${CHECKPOINTS_TABLE} (projection, part, parts, version) values ('balances', 0, 1, 1) on conflict do nothing`);
  const { positions } = await appendEvents(db.pool, 'account-1', [{ type: 'account.credited', data: { amount: 1 } }], { expectedVersion: 'any' });
  return positions[0]!;
}

describe('GET /wait', () => {
  it('frees the waiter of a client that disconnects', async () => {
    const url = await start();
    const position = await unappliedPosition();
    const client = new AbortController();
    const request = fetch(`${url}/wait?projection=balances&position=${position}&timeout=60s`, { signal: client.signal });
    await waitFor(() => waiters.size() === 1, { message: 'the request to wait' });
    client.abort();
    await expect(request).rejects.toThrow();
    await waitFor(() => waiters.size() === 0, { message: 'the waiter to be freed' });
  });

  it('answers 503 to a wait in progress, and to one that comes later, when the daemon stops', async () => {
    const url = await start();
    const position = await unappliedPosition();
    const request = fetch(`${url}/wait?projection=balances&position=${position}&timeout=60s`);
    await waitFor(() => waiters.size() === 1, { message: 'the request to wait' });
    waiters.close();
    const response = await request;
    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({ error: 'the daemon is stopping' });
    // One that comes in before the server stops listening does not wait either.
    expect((await fetch(`${url}/wait?projection=balances&position=${position}&timeout=60s`)).status).toBe(503);
    await server!.stop();
  });

  it('answers 400 without a projection', async () => {
    const url = await start();
    const missing = await fetch(`${url}/wait?position=1`);
    expect(missing.status).toBe(400);
    expect(await missing.json()).toEqual({ error: 'projection is missing: name one or more, /wait?projection=balances&position=42' });
  });
});
