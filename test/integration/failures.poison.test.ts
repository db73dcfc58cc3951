import { writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { runCli, startDaemon } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { appendItems, appliedStats, itemsProjectionSource, positionsOf } from '../helpers/items.js';
import { writeProject } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

const parkDb = await createTestDatabase();
const stopDb = await createTestDatabase();

interface FailedJson {
  id: string;
  projection: string;
  position: string;
  errorClass: string;
  errorMessage: string;
  errorCode: string | null;
  attempts: number;
  status: string;
}

async function failedList(cwd: string, env: Record<string, string>, args: string[] = []): Promise<FailedJson[]> {
  const { code, stdout, stderr } = await runCli(['failed', 'list', '--json', ...args], { cwd, env });
  expect(stderr).toBe('');
  expect(code).toBe(0);
  return JSON.parse(stdout) as FailedJson[];
}

describe('poison events, onError: park', () => {
  it('parks the two poison events of 5,000, applies the rest once, and retries them after a fix', async () => {
    const env = { DATABASE_URL: parkDb.url };
    const project = await writeProject({
      'projd.yaml': 'projections:\n  batchSize: 500\n  maxAttempts: 2\nmetrics:\n  port: 0\n',
      'projections/poison.ts': itemsProjectionSource({ name: 'poison', poisoned: true }),
      'projections/counter.ts': itemsProjectionSource({ name: 'counter', poisoned: false }),
    });
    try {
      await appendItems(parkDb.pool, 5_000, { 1234: 'throw', 3456: 'database' });
      const poisonPositions = await positionsOf(parkDb.pool, [1234, 3456]);

      const daemon = startDaemon(['run'], { cwd: project.dir, env });
      await waitFor(async () => (await appliedStats(parkDb.pool, 'poison')).count === 4_998, {
        timeoutMs: 60_000,
        message: 'the 4,998 good events applied',
      });
      // The other projection reads the same events and never sees a failure.
      await waitFor(async () => (await appliedStats(parkDb.pool, 'counter')).count === 5_000, {
        timeoutMs: 60_000,
        message: 'the second projection applied all 5,000',
      });
      expect(await appliedStats(parkDb.pool, 'poison')).toEqual({ count: 4_998, maxTimes: 1 });
      expect(await appliedStats(parkDb.pool, 'counter')).toEqual({ count: 5_000, maxTimes: 1 });
      expect(await daemon.stop()).toBe(0);

      const parked = await failedList(project.dir, env);
      expect(parked.map(({ projection, position, errorClass, errorCode, attempts, status }) => ({
        projection, position, errorClass, errorCode, attempts, status,
      }))).toEqual([
        { projection: 'poison', position: poisonPositions[0], errorClass: 'handler', errorCode: null, attempts: 2, status: 'parked' },
        { projection: 'poison', position: poisonPositions[1], errorClass: 'database', errorCode: '22012', attempts: 2, status: 'parked' },
      ]);
      expect(parked[0]!.errorMessage).toBe('poison event item-34');
      expect(parked[1]!.errorMessage).toBe('division by zero');

      // The table view, for people.
      const table = await runCli(['failed', 'list'], { cwd: project.dir, env });
      expect(table.code).toBe(0);
      expect(table.stdout).toContain('22012 division by zero');

      // A retry through the same broken handler fails again, and is counted.
      const again = await runCli(['failed', 'retry', parked[0]!.id], { cwd: project.dir, env });
      expect(again.code).toBe(1);
      expect(again.stdout).toBe(`failed again ${parked[0]!.id}: poison event item-34\n`);
      expect((await failedList(project.dir, env))[0]!.attempts).toBe(3);

      await writeFile(project.path('projections/poison.ts'), itemsProjectionSource({ name: 'poison', poisoned: false }));
      const retry = await runCli(['failed', 'retry', '--all'], { cwd: project.dir, env });
      expect(retry.stderr).toBe('');
      expect(retry.code).toBe(0);
      expect(retry.stdout.trim().split('\n')).toEqual([
        `retried ${parked[0]!.id} (poison at position ${poisonPositions[0]})`,
        `retried ${parked[1]!.id} (poison at position ${poisonPositions[1]})`,
      ]);
      expect(await appliedStats(parkDb.pool, 'poison')).toEqual({ count: 5_000, maxTimes: 1 });
      expect(await failedList(project.dir, env)).toEqual([]);
      const all = await failedList(project.dir, env, ['--all']);
      expect(all.map((event) => event.status)).toEqual(['retried', 'retried']);
    } finally {
      await project.cleanup();
    }
  }, 120_000);
});

describe('a poison event, onError: stop', () => {
  it('halts the projection right before the event, lets the others go on, and resumes on skip', async () => {
    const env = { DATABASE_URL: stopDb.url };
    const project = await writeProject({
      'projd.yaml': 'projections:\n  batchSize: 50\nmetrics:\n  port: 0\n',
      'projections/halting.ts': itemsProjectionSource({ name: 'halting', poisoned: true, onError: 'stop', maxAttempts: 1 }),
      'projections/counter.ts': itemsProjectionSource({ name: 'counter', poisoned: false }),
    });
    try {
      await appendItems(stopDb.pool, 200, { 120: 'throw' });
      const [poisonPosition] = await positionsOf(stopDb.pool, [120]);

      const daemon = startDaemon(['run'], { cwd: project.dir, env });
      await daemon.waitForLog((line) => line.msg === 'event.halted', 60_000);
      await waitFor(async () => (await appliedStats(stopDb.pool, 'counter')).count === 200, {
        timeoutMs: 30_000,
        message: 'the other projection went on to the end',
      });

      // Exactly the events before the poison one, in delivery order, are applied.
      const { rows } = await stopDb.pool.query<{ missing: string; beyond: string }>(
        `select count(*) filter (where a.position is null and e.position < $1) as missing,
                count(*) filter (where a.position is not null and e.position >= $1) as beyond
           from projd.events e left join halting_applied a using (position)`,
        [poisonPosition],
      );
      expect(rows[0]).toEqual({ missing: '0', beyond: '0' });
      expect(await appliedStats(stopDb.pool, 'halting')).toEqual({ count: 120, maxTimes: 1 });

      const [blocking] = await failedList(project.dir, env);
      expect(blocking).toMatchObject({ projection: 'halting', position: poisonPosition, status: 'parked' });
      const { rows: checkpoint } = await stopDb.pool.query(
        "select blocked_by::text as blocked_by from projd.checkpoints where projection = 'halting'",
      );
      expect(checkpoint[0]).toEqual({ blocked_by: blocking!.id });

      // A typo among the ids acts on none of them.
      const typo = await runCli(['failed', 'skip', blocking!.id, '999999'], { cwd: project.dir, env });
      expect(typo.code).toBe(2);
      expect(typo.stderr).toBe('projd: no failed event with id 999999 (see projd failed list)\n');
      expect((await failedList(project.dir, env))[0]).toMatchObject({ id: blocking!.id, status: 'parked' });

      const skip = await runCli(['failed', 'skip', blocking!.id], { cwd: project.dir, env });
      expect(skip.stderr).toBe('');
      expect(skip.stdout).toBe(`skipped ${blocking!.id} (halting at position ${poisonPosition}); projection 'halting' runs again\n`);
      // The running daemon is woken by the skip and goes on past the event.
      await waitFor(async () => (await appliedStats(stopDb.pool, 'halting')).count === 199, {
        timeoutMs: 30_000,
        message: 'the halted projection resumed after the skip',
      });
      expect(await appliedStats(stopDb.pool, 'halting')).toEqual({ count: 199, maxTimes: 1 });
      expect(await daemon.stop()).toBe(0);
    } finally {
      await project.cleanup();
    }
  }, 120_000);
});
