import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isLiveLine, startDaemon } from '../helpers/cli.js';
import { startIsolatedPostgres, type IsolatedPostgres } from '../helpers/database.js';
import { countApplied, creditLedger, expectLedgerExact, ledgerProjectionSource } from '../helpers/ledger.js';
import { writeProject } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

// A frozen server backend (SIGSTOP) keeps its socket open and answers nothing: TCP sees no
// fault, so only the listener's probe, with its timeout, can tell. The poll interval is far
// longer than any wait below: only notifications can deliver.
// A server of its own: while a backend is frozen, DROP DATABASE elsewhere on the server waits for
// it (a barrier every backend must absorb), and that open transaction would stall every
// projection on the server.
let db: IsolatedPostgres;
let project: Awaited<ReturnType<typeof writeProject>>;
const frozen = new Set<number>();

beforeAll(async () => {
  db = await startIsolatedPostgres();
  project = await writeProject({
    // Probe every second, and give up on a probe after two: a frozen backend is found in seconds.
    'probed.yaml': [
      'database:',
      '  connectTimeout: 2s',
      '  listenProbeInterval: 1s',
      'projections:',
      '  pollInterval: 30m',
      'metrics:',
      '  port: 0',
    ].join('\n'),
    // No probe within the test: only stop() deals with the frozen backend.
    'unprobed.yaml': [
      'database:',
      '  listenProbeInterval: 30m',
      'projections:',
      '  pollInterval: 30m',
      'metrics:',
      '  port: 0',
      'shutdownTimeout: 60s',
    ].join('\n'),
    'projections/ledger.ts': await ledgerProjectionSource(),
  });
});

// A stopped backend would keep the server from shutting down, and stall database drops.
afterEach(() => {
  for (const pid of frozen) thaw(pid);
});

afterAll(async () => {
  await db?.stop();
  await project?.cleanup();
});

const credit = (streamId: string, version: number) => creditLedger(db.pool, streamId, version);

/** SIGSTOPs the server process behind the daemon's listening connection; returns its pid. */
async function freezeListenerBackend(): Promise<number> {
  const { rows } = await db.pool.query<{ pid: number }>(
    "select pid from pg_stat_activity where application_name like 'projd listener %'",
  );
  expect(rows).toHaveLength(1);
  const pid = rows[0]!.pid;
  frozen.add(pid);
  process.kill(pid, 'SIGSTOP');
  return pid;
}

function thaw(pid: number): void {
  frozen.delete(pid);
  try {
    process.kill(pid, 'SIGCONT');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

describe('projd run, with its listener backend frozen', () => {
  it('replaces the connection whose probe times out, and delivers events appended meanwhile and after', async () => {
    const daemon = startDaemon(['run', '-c', 'probed.yaml'], { cwd: project.dir, env: { DATABASE_URL: db.url } });
    await daemon.waitForLog(isLiveLine, 30_000);
    await credit('frozen-1', 1);
    await waitFor(async () => (await countApplied(db.pool)) === 1, { timeoutMs: 10_000, message: 'event applied' });

    const pid = await freezeListenerBackend();
    const logsBefore = daemon.logs().length;
    await credit('frozen-1', 2);
    // Within a minute with the defaults (30s probe interval + 10s timeout); here within seconds.
    await daemon.waitForLog('listener.reconnected', 20_000, { from: logsBefore });
    // The daemon has let go of the frozen backend; nothing below needs it stopped.
    thaw(pid);
    await waitFor(async () => (await countApplied(db.pool)) === 2, {
      timeoutMs: 10_000,
      message: 'event appended after the freeze applied',
    });

    // The new connection LISTENs: a later append arrives through NOTIFY too.
    await credit('frozen-2', 1);
    await waitFor(async () => (await countApplied(db.pool)) === 3, { timeoutMs: 10_000, message: 'event after reconnect applied' });

    expect(await daemon.stop()).toBe(0);
    await expectLedgerExact(db.pool);
  });

  it('stops promptly, not held up by closing the frozen connection', async () => {
    const daemon = startDaemon(['run', '-c', 'unprobed.yaml'], { cwd: project.dir, env: { DATABASE_URL: db.url } });
    await daemon.waitForLog(isLiveLine, 30_000);
    const pid = await freezeListenerBackend();

    // Well inside shutdownTimeout (60s): a close that waited on the frozen server would miss it.
    expect(await daemon.stop('SIGTERM', 15_000)).toBe(0);
    expect(daemon.logs().map((line) => line.msg)).toContain('daemon.stopped');
    thaw(pid);
  });
});
