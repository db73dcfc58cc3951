import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/loadConfig.js';
import { silentLogger } from '../../src/log.js';
import { defineProjection } from '../../src/projection/defineProjection.js';
import { runBatch } from '../../src/runner/runBatch.js';
import { readStatusReport, type ProjectionStatus } from '../../src/status/readStatusReport.js';
import { runCli, startDaemon } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { appendLedgerEvents, countEvents } from '../helpers/ledger.js';
import { writeProject, type Project } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';
import { untilBelowGate } from '../helpers/snapshotGate.js';

const db = await createTestDatabase();
const projects: Project[] = [];

afterAll(async () => {
  await Promise.all(projects.map((project) => project.cleanup()));
});

/** Records each application of each event; a second one of an event fails on the primary key. */
function applied(partitions: number, name = 'parts_applied') {
  const record = async (event: { position: bigint; streamId: string; streamVersion: number }, db: { query: Function }) => {
    await db.query(`insert into ${name} (position, stream_id, stream_version) values ($1, $2, $3)`, [
      event.position,
      event.streamId,
      event.streamVersion,
    ]);
  };
  return defineProjection({
    name,
    version: 1,
    partitions,
    setup: `create table if not exists ${name} (
              position bigint primary key, stream_id text not null, stream_version integer not null,
              seq bigserial not null)`,
    reset: `truncate ${name}`,
    handlers: { 'account.credited': record, 'account.debited': record },
  });
}

async function runUntilCaughtUp(partitions: number): Promise<void> {
  const config = await loadConfig({ env: { DATABASE_URL: db.url }, cwd: process.cwd() });
  config.metrics.port = 0;
  const app = createApp(config, { projections: [applied(partitions)], logger: silentLogger() });
  try {
    await app.start();
    await app.caughtUp();
  } finally {
    await app.stop();
  }
}

/** Every event applied once (the primary key sees to that), and each stream's in version order. */
async function expectEachEventOnceInStreamOrder(): Promise<void> {
  const { rows } = await db.pool.query<{ applied: string; out_of_order: string }>(`
    select (select count(*) from parts_applied) as applied,
           (select count(*) from (
              select stream_version, row_number() over (partition by stream_id order by seq) as nth
                from parts_applied) s
             where stream_version <> nth) as out_of_order`);
  expect(rows[0]).toEqual({ applied: String(await countEvents(db.pool)), out_of_order: '0' });
}

async function checkpointParts(projection: string): Promise<Array<{ part: number; parts: number }>> {
  const { rows } = await db.pool.query<{ part: number; parts: number }>(
    'select part, parts from projd.checkpoints where projection = $1 order by part',
    [projection],
  );
  return rows;
}

describe('a partitioned projection', () => {
  it('sets up in a transaction of its own, so that no part waits for another part\'s batch', async () => {
    await appendLedgerEvents(db.pool, { count: 100, streams: 10, prefix: 'alone' });
    await untilBelowGate(db.pool);
    const projection = applied(2, 'parts_alone');
    const pass = (index: number) =>
      runBatch({ pool: db.pool, projection, batchSize: 1000, timeoutMs: 30_000, preparedStatements: true, part: { index, count: 2 } });
    expect(await pass(1)).toEqual({ kind: 'set_up', setUp: 'created' });
    // Committed: every part's checkpoint at the start, the table there and empty.
    expect(await checkpointParts('parts_alone')).toEqual([{ part: 0, parts: 2 }, { part: 1, parts: 2 }]);
    expect((await db.pool.query('select count(*)::int as n from parts_alone')).rows[0]).toEqual({ n: 0 });
    expect(await pass(1)).toMatchObject({ kind: 'done', applied: expect.any(Number), full: false });
    expect(await pass(0)).toMatchObject({ kind: 'done', full: false });
    expect((await db.pool.query('select count(*)::int as n from parts_alone')).rows[0]).toEqual({ n: await countEvents(db.pool) });
  });

  it('starts every part as soon as one has set it up, none standing by for pollInterval', async () => {
    await appendLedgerEvents(db.pool, { count: 2_000, streams: 40, prefix: 'setup' });
    const config = await loadConfig({ env: { DATABASE_URL: db.url }, cwd: process.cwd() });
    config.metrics.port = 0;
    // An hour: a part that stood by behind another part's set-up or batch would not catch up in this test.
    config.projections.pollInterval = 3_600_000;
    config.projections.batchSize = 50;
    const states: Array<{ part: string; to: string }> = [];
    let stoodBy!: () => void;
    const standby = new Promise<void>((resolve) => (stoodBy = resolve));
    const logger = pino({ level: 'info' }, {
      write: (text: string) => {
        const line = JSON.parse(text) as { msg: string; part: string; to: string };
        if (line.msg !== 'projection.state') return;
        states.push({ part: line.part, to: line.to });
        if (line.to === 'standby') stoodBy();
      },
    });
    const app = createApp(config, { projections: [applied(4, 'parts_setup')], logger });
    try {
      await app.start();
      await Promise.race([app.caughtUp(), standby]);
    } finally {
      await app.stop();
    }
    expect(states.filter((state) => state.to === 'standby')).toEqual([]);
    const { rows } = await db.pool.query<{ n: string }>('select count(*) as n from parts_setup');
    expect(rows[0]!.n).toBe(String(await countEvents(db.pool)));
  }, 60_000);

  it('is rebuilt from the start when its number of parts changes, up or down', async () => {
    await appendLedgerEvents(db.pool, { count: 2_000, streams: 40, prefix: 'parts' });
    await runUntilCaughtUp(2);
    expect(await checkpointParts('parts_applied')).toEqual([
      { part: 0, parts: 2 },
      { part: 1, parts: 2 },
    ]);
    await expectEachEventOnceInStreamOrder();

    // A row no event wrote: a rebuild's reset clears it, going on from the checkpoints would not.
    const marker = () => db.pool.query(`insert into parts_applied (position, stream_id, stream_version) values (-1, 'marker', 1)`);
    const hasMarker = async () => (await db.pool.query('select 1 from parts_applied where position = -1')).rowCount === 1;
    await marker();
    await appendLedgerEvents(db.pool, { count: 500, streams: 40, prefix: 'parts' });
    // Before a daemon runs the new number of parts, status says a rebuild is pending.
    const pending = await readStatusReport(db.pool, [applied(4)], { pollInterval: 1000, stallAfter: 5000 });
    expect(pending.projections[0]).toMatchObject({ rebuildPending: true, storedVersion: 1, state: 'stopped' });
    expect(pending.projections[0]!.parts!.map((part) => part.state)).toEqual(['stopped', 'stopped', 'stopped', 'stopped']);
    await runUntilCaughtUp(4);
    expect(await hasMarker()).toBe(false);
    expect(await checkpointParts('parts_applied')).toEqual([0, 1, 2, 3].map((part) => ({ part, parts: 4 })));
    await expectEachEventOnceInStreamOrder();

    await marker();
    await runUntilCaughtUp(1);
    expect(await hasMarker()).toBe(false);
    expect(await checkpointParts('parts_applied')).toEqual([{ part: 0, parts: 1 }]);
    await expectEachEventOnceInStreamOrder();
  }, 120_000);

  it('shows its parts in status, halts one part on a failed event under onError: stop, and replays', async () => {
    const project = await writeProject({
      'projd.yaml': 'projections:\n  pollInterval: 100ms\nmetrics:\n  port: 0\n',
      'projections/tally.yaml': `name: tally
version: 1
partitions: 4
onError: stop
maxAttempts: 1
setup: create table if not exists tally (stream_id text primary key, total bigint not null check (total >= 0))
reset: truncate tally
handlers:
  account.credited: |
    insert into tally (stream_id, total) values (:streamId, (:data->>'amount')::bigint)
    on conflict (stream_id) do update set total = tally.total + excluded.total
`,
    });
    projects.push(project);
    const env = { DATABASE_URL: db.url };
    const cli = (args: string[]) => runCli(args, { cwd: project.dir, env });
    const status = async (): Promise<ProjectionStatus> => {
      const result = await cli(['status', '--json']);
      return (JSON.parse(result.stdout) as ProjectionStatus[]).find((found) => found.name === 'tally')!;
    };
    const expectTallyExact = async () => {
      const { rows } = await db.pool.query(`
        with expected as (
          select stream_id, sum((data->>'amount')::bigint) as total
            from projd.events where type = 'account.credited' and (data->>'amount')::bigint > 0 group by stream_id)
        select * from expected e full join tally t using (stream_id) where e.total is distinct from t.total`);
      expect(rows).toEqual([]);
    };

    const daemon = startDaemon(['run'], { cwd: project.dir, env });
    try {
      const live = await waitFor(async () => {
        const found = await status();
        return found.state === 'live' && found.lagEvents === '0' && found;
      }, { timeoutMs: 30_000, message: 'tally live' });
      expect(live.parts!.map((part) => part.part)).toEqual([0, 1, 2, 3]);
      expect(live.parts!.every((part) => part.state === 'live' && part.lagEvents === '0')).toBe(true);
      // The projection's position is that of the part furthest behind.
      expect(live.position).toBe(String(Math.min(...live.parts!.map((part) => Number(part.position)))));
      await expectTallyExact();

      // A poison event: its stream's part halts right before it, the other parts go on. Its
      // stream is in part 3, not the first one, which a part mixed up with the whole would halt.
      const { rows } = await db.pool.query<{ position: string; part: number }>(
        `insert into projd.events (stream_id, stream_version, type, data)
         values ('poison-1', 1, 'account.credited', '{"amount": -5}')
         returning position::text, projd.stream_part(stream_id, 4) as part`,
      );
      const poison = rows[0]!;
      expect(poison.part).toBe(3);
      await appendLedgerEvents(db.pool, { count: 400, streams: 40, prefix: 'parts' });
      const halted = await waitFor(async () => {
        const found = await status();
        const others = found.parts!.filter((part) => part.part !== poison.part);
        return found.parts![poison.part]!.state === 'failed' && others.every((part) => part.lagEvents === '0') && found;
      }, { timeoutMs: 30_000, message: 'the poison part halted, the others caught up' });
      expect(halted.state).toBe('failed');
      expect(halted.blockedBy).toBe(halted.parts![poison.part]!.blockedBy);
      const table = await cli(['status']);
      expect(table.stdout).toMatch(new RegExp(`\\n  part ${poison.part}/4 +failed +\\d+ +`));

      const list = await cli(['failed', 'list', '--json']);
      const failed = JSON.parse(list.stdout) as Array<{ id: string; position: string; part?: unknown }>;
      expect(failed).toEqual([expect.objectContaining({ position: poison.position, part: { index: poison.part, count: 4 } })]);
      const skip = await cli(['failed', 'skip', failed[0]!.id]);
      expect(skip).toMatchObject({ code: 0, stdout: expect.stringContaining("projection 'tally' runs again") });
      await waitFor(async () => {
        const found = await status();
        return found.state === 'live' && found.parts!.every((part) => part.state === 'live' && part.lagEvents === '0');
      }, { timeoutMs: 30_000, message: 'every part live again after the skip' });
      await expectTallyExact();
    } finally {
      expect(await daemon.stop()).toBe(0);
    }

    // A replay would halt on the poison event again (onError: stop): out of the store with it.
    await db.pool.query(`delete from projd.events where stream_id = 'poison-1'`);
    const replay = await cli(['replay', 'tally']);
    expect(replay).toMatchObject({ code: 0 });
    // Progress counts each part's events up to its own checkpoint: every event of its type, once.
    const { rows: credited } = await db.pool.query<{ n: string }>(
      `select count(*) as n from projd.events where type = 'account.credited'`,
    );
    expect(replay.stdout).toContain(`replayed tally: ${Number(credited[0]!.n).toLocaleString('en-US')} events in`);
    await expectTallyExact();
    expect(await checkpointParts('tally')).toEqual([0, 1, 2, 3].map((part) => ({ part, parts: 4 })));
    const after = await status();
    expect(after).toMatchObject({ lagEvents: '0', failedEvents: 0 });
  }, 180_000);
});
