import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { assertNoChildrenLeft, runCli, startDaemon, type Daemon } from '../helpers/cli.js';
import { createTestDatabase, startIsolatedPostgres } from '../helpers/database.js';
import { writeProject, type Project } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

const CONTRACT_INSERT = `insert into projd.events (stream_id, stream_version, type, data) values ('account-1', 1, 'account.opened', '{"owner": "Ada"}')`;

// Stands in for `projd run`: pino-like JSON lines on stdout, one line that is not JSON, and a
// clean exit on SIGTERM. Like the real daemon, it says it started only once it handles signals.
const FAKE_DAEMON = `
const keepAlive = setInterval(() => {}, 1000);
process.on('SIGTERM', () => {
  clearInterval(keepAlive);
  console.log(JSON.stringify({ level: 30, msg: 'daemon.stopped' }));
});
console.log('starting (not JSON)');
process.stderr.write('a warning on stderr\\n');
console.log(JSON.stringify({ level: 30, msg: 'daemon.started', args: process.argv.slice(2) }));
`;

const FAKE_CLI = `
console.log(JSON.stringify({ args: process.argv.slice(2), inherited: process.env.DATABASE_URL ?? null, given: process.env.PROJD_HELPER_TEST }));
console.error('bad flag');
process.exitCode = 2;
`;

const db = await createTestDatabase();

describe('createTestDatabase', () => {
  test('gives each file its own database, cloned from the migrated template', async () => {
    const { rows } = await db.pool.query<{ database: string; events: string | null }>(
      `select current_database() as database, to_regclass('projd.events')::text as events`,
    );
    expect(rows).toEqual([{ database: db.name, events: 'projd.events' }]);
    expect(db.name).not.toBe(inject('postgresTemplateDatabase'));
  });

  test("the contract's one-line INSERT is stored and notifies projd_events", async () => {
    const listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    try {
      const channels: string[] = [];
      listener.on('notification', (notification) => channels.push(notification.channel));
      await listener.query('listen projd_events');

      await db.pool.query(CONTRACT_INSERT);

      await waitFor(() => channels.includes('projd_events'), { timeoutMs: 5_000, message: 'a notification on projd_events' });
      const { rows } = await db.pool.query('select position, stream_id, stream_version, type, data, metadata from projd.events');
      expect(rows).toEqual([
        { position: '1', stream_id: 'account-1', stream_version: 1, type: 'account.opened', data: { owner: 'Ada' }, metadata: {} },
      ]);
    } finally {
      await listener.end();
    }
  });
});

describe('startIsolatedPostgres', () => {
  test('starts a migrated server of its own and stops it', async () => {
    const isolated = await startIsolatedPostgres();
    try {
      expect(isolated.port).not.toBe(Number(new URL(inject('postgresAdminUrl')).port));
      const { rows } = await isolated.pool.query(`select to_regclass('projd.events')::text as events`);
      expect(rows).toEqual([{ events: 'projd.events' }]);
    } finally {
      await isolated.stop();
    }
    await isolated.stop();
    const client = new pg.Client({ connectionString: isolated.url, connectionTimeoutMillis: 2_000 });
    await expect(client.connect()).rejects.toThrow();
  });
});

describe('waitFor', () => {
  test('returns the first truthy value', async () => {
    let calls = 0;
    const value = await waitFor(() => (++calls >= 3 ? { calls } : undefined), { timeoutMs: 2_000, intervalMs: 10 });
    expect(value).toEqual({ calls: 3 });
  });

  test('fails at the deadline with its message and the last value', async () => {
    await expect(waitFor(() => ({ position: 2 }).position === 3, { timeoutMs: 200, intervalMs: 20, message: 'position 3' })).rejects.toThrow(
      /^waitFor: position 3 not met within 200 ms \(\d+ attempts\); last value: false$/,
    );
  });

  test('fails with the last error when every attempt throws', async () => {
    const failing = waitFor(
      () => {
        throw new Error('connection refused');
      },
      { timeoutMs: 150, intervalMs: 20, message: 'the server' },
    );
    await expect(failing).rejects.toThrow(/the server not met within 150 ms .*last error: connection refused/);
  });

  test('does not wait past the deadline on an attempt that never settles', async () => {
    const started = Date.now();
    await expect(waitFor(() => new Promise<never>(() => {}), { timeoutMs: 200, message: 'a hung check' })).rejects.toThrow(/a hung check/);
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});

describe('writeProject', () => {
  test('writes files into subfolders of a fresh temp dir', async () => {
    const project = await writeProject({ 'projd.yaml': 'projections:\n  dir: ./projections\n', 'projections/nested/a.ts': 'export {};\n' });
    try {
      expect(await readFile(project.path('projections/nested/a.ts'), 'utf8')).toBe('export {};\n');
      expect(project.path('projd.yaml')).toBe(`${project.dir}/projd.yaml`);
      expect(() => project.path('../outside')).toThrow(/outside the project/);
    } finally {
      await project.cleanup();
    }
  });
});

describe('runCli and startDaemon', () => {
  let project: Project;
  beforeAll(async () => {
    project = await writeProject({ 'daemon.mjs': FAKE_DAEMON, 'cli.mjs': FAKE_CLI });
  });
  afterAll(() => project.cleanup());

  test('runCli returns the exit code and both streams, without inheriting DATABASE_URL', async () => {
    const result = await runCli(['status', '--json'], { cwd: project.dir, bin: project.path('cli.mjs'), env: { PROJD_HELPER_TEST: 'yes' } });
    expect(result).toMatchObject({ code: 2, signal: null, stderr: 'bad flag\n' });
    expect(JSON.parse(result.stdout)).toEqual({ args: ['status', '--json'], inherited: null, given: 'yes' });
  });

  test('startDaemon follows JSON log lines, keeps the others, and stops on SIGTERM', async () => {
    const daemon = startDaemon(['run'], { cwd: project.dir, bin: project.path('daemon.mjs') });
    const started = await daemon.waitForLog('daemon.started', 10_000);
    expect(started).toMatchObject({ level: 30, args: ['run'] });
    await waitFor(() => daemon.stderr().includes('a warning on stderr'), { timeoutMs: 5_000, message: 'the stderr line' });

    expect(await daemon.stop()).toBe(0);
    expect(daemon.logs().map((line) => line.msg)).toEqual(['daemon.started', 'daemon.stopped']);
    expect(daemon.stdoutLines()[0]).toBe('starting (not JSON)');
    await expect(daemon.waitForLog('never.logged', 1_000)).rejects.toThrow(/exited before a log line matched msg 'never.logged'/);
  });

  test('waitForLog fails with the recent output when nothing matches in time', async () => {
    const daemon = startDaemon(['run'], { cwd: project.dir, bin: project.path('daemon.mjs') });
    try {
      // Output first, so the short deadline below measures waitForLog, not a busy machine's start-up.
      await daemon.waitForLog('daemon.started', 10_000);
      await expect(daemon.waitForLog((line) => line.msg === 'batch.applied', 300)).rejects.toThrow(
        /no match within 300 ms before a log line matched the predicate\nlast stdout lines:\n {2}starting \(not JSON\)/,
      );
    } finally {
      await daemon.kill9();
    }
    expect(daemon.child.signalCode).toBe('SIGKILL');
  });

  test('assertNoChildrenLeft kills a child the test forgot, and fails', async () => {
    const daemon = startDaemon(['run'], { cwd: project.dir, bin: project.path('daemon.mjs') });
    await daemon.waitForLog('daemon.started', 10_000);
    await expect(assertNoChildrenLeft('test')).rejects.toThrow(/still running, now killed: daemon\.mjs run \(pid \d+\)/);
    expect(daemon.child.signalCode).toBe('SIGKILL');
  });

  describe('a daemon shared by the tests of a file', () => {
    let shared: Daemon;
    beforeAll(async () => {
      shared = startDaemon(['run', '--shared'], { cwd: project.dir, bin: project.path('daemon.mjs') });
      await shared.waitForLog('daemon.started', 10_000);
    });
    afterAll(async () => {
      expect(await shared.stop()).toBe(0);
    });

    test('outlives the first test', () => {
      expect(shared.child.exitCode).toBeNull();
    });

    test('and the second', () => {
      expect(shared.child.exitCode).toBeNull();
    });
  });
});
