import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/embeddedPostgres.js';
import type { ProjectionStatus } from '../../src/status/readStatusReport.js';
import { advisoryLockKey } from '../../src/store/names.js';
import { runCli, startDaemon, type Daemon, type LogLine } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { writeProject, type Project } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

/**
 * Projection `name` at `version`, reading `<name>.added`: per stream the sum of the amounts
 * times the version, so each version's tables differ; and each event applied, with the version
 * that applied it and how many times. An event whose data has `holdVersion: <this version>`
 * makes its batch wait for the advisory lock `hold` before it writes anything: a test holding
 * that lock stops this version's runner there, in a transaction without an id, so that no other
 * runner is held back by it.
 */
function tallySource(name: string, version: number): string {
  return `
import { defineProjection } from 'projd';

export default defineProjection({
  name: '${name}',
  version: ${version},
  setup: [
    'create table if not exists ${name}_applied (position bigint primary key, stream_id text not null, version integer not null, times integer not null default 1)',
    'create table if not exists ${name}_totals (stream_id text primary key, total bigint not null)',
  ],
  reset: ['truncate ${name}_applied', 'truncate ${name}_totals'],
  eventTypes: ['${name}.added'],
  handleBatch: async (events, db) => {
    for (const event of events) {
      if (event.data.holdVersion === ${version}) await db.query('select pg_advisory_xact_lock($1::bigint)', [event.data.hold]);
    }
    if (events.length === 0) return;
    await db.query(
      \`insert into ${name}_applied (position, stream_id, version)
       select p, s, ${version} from unnest($1::bigint[], $2::text[]) as t(p, s)
       on conflict (position) do update set times = ${name}_applied.times + 1\`,
      [events.map((event) => String(event.position)), events.map((event) => event.streamId)],
    );
    await db.query(
      \`insert into ${name}_totals (stream_id, total)
       select s, sum(a) * ${version} from unnest($1::text[], $2::bigint[]) as t(s, a) group by s
       on conflict (stream_id) do update set total = ${name}_totals.total + excluded.total\`,
      [events.map((event) => event.streamId), events.map((event) => event.data.amount)],
    );
  },
});
`;
}

const db = await createTestDatabase();
const env = { DATABASE_URL: db.url };
const projects: Project[] = [];

afterAll(async () => {
  await Promise.all(projects.map((project) => project.cleanup()));
});

/** A project running `name` at `version`, with its own metrics port when asked. */
async function projectOf(name: string, version: number, { metricsPort = 0 } = {}): Promise<Project> {
  // A fast poll: runners standing by and builds waiting for a lock find it free sooner. A long
  // batch timeout: the tests keep batches and swaps waiting at held locks for a while.
  const config = `projections:\n  batchSize: 200\n  pollInterval: 200ms\n  batchTimeout: 2m\nmetrics:\n  port: ${metricsPort}\n`;
  const project = await writeProject({ 'projd.yaml': config, [`projections/${name}.mjs`]: tallySource(name, version) });
  projects.push(project);
  return project;
}

/** Appends `count` events `<name>.added` over 20 streams; `extra` goes into each one's data. */
async function append(name: string, count: number, extra: object = {}): Promise<void> {
  await db.pool.query(
    `with next as (select i, $2 || '-' || (i % 20) as stream_id from generate_series(1, $3::int) i)
     insert into projd.events (stream_id, stream_version, type, data)
     select n.stream_id,
            coalesce((select max(stream_version) from projd.events e where e.stream_id = n.stream_id), 0)
              + row_number() over (partition by n.stream_id order by n.i),
            $1, jsonb_build_object('amount', 1 + n.i % 97) || $4::jsonb
       from next n
      order by n.i`,
    [`${name}.added`, name, count, JSON.stringify(extra)],
  );
}

interface Tally {
  events: number;
  applied: number;
  /** Applied more than once, or by another version than expected. */
  wrong: number;
  missing: number;
  /** Streams whose total differs from SQL over the events. */
  wrongTotals: number;
}

/** How the live tables of `name` compare with what `version` makes of the events. */
async function tally(name: string, version: number): Promise<Tally> {
  const { rows } = await db.pool.query<Tally>(
    `with expected as (
       select stream_id, sum((data->>'amount')::bigint) * $2 as total from projd.events where type = $1 group by stream_id)
     select (select count(*)::int from projd.events where type = $1) as events,
            (select count(*)::int from ${name}_applied) as applied,
            (select count(*)::int from ${name}_applied where times <> 1 or version <> $2) as wrong,
            (select count(*)::int from projd.events e
              where type = $1 and not exists (select 1 from ${name}_applied a where a.position = e.position)) as missing,
            (select count(*)::int from expected e full join ${name}_totals t using (stream_id)
              where e.total is distinct from t.total) as "wrongTotals"`,
    [`${name}.added`, version],
  );
  return rows[0]!;
}

/** The live tables hold every event, each applied once by `version`, and its totals. */
async function expectExact(name: string, version: number): Promise<void> {
  const found = await tally(name, version);
  expect(found).toEqual({ events: found.events, applied: found.events, wrong: 0, missing: 0, wrongTotals: 0 });
  expect(found.events).toBeGreaterThan(0);
}

const exactly = async (name: string, version: number) => {
  const found = await tally(name, version);
  return found.applied === found.events && found.wrong === 0 && found.missing === 0 && found.wrongTotals === 0;
};

/** A session of the test's own holding the advisory lock `key` until released. */
async function holdLock(key: number): Promise<{ release(): Promise<void> }> {
  const client = await db.pool.connect();
  await client.query('select pg_advisory_lock($1::bigint)', [key]);
  let released: Promise<void> | undefined;
  return {
    release: () =>
      (released ??= client
        .query('select pg_advisory_unlock($1::bigint)', [key])
        .then(() => undefined)
        .finally(() => client.release())),
  };
}

/** How many sessions wait for the advisory lock `key` (a projection's, or one a test holds). */
async function waitingFor(key: number | string): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(
    `select count(*)::int as n from pg_locks
      where locktype = 'advisory' and objsubid = 1 and not granted
        and database = (select oid from pg_database where datname = current_database())
        and ((classid::bigint << 32) | objid::bigint) = $1::bigint`,
    [String(key)],
  );
  return rows[0]!.n;
}

/** Until `count` sessions wait for the advisory lock `key`. */
async function untilWaiting(key: number | string, count: number, message: string): Promise<void> {
  await waitFor(async () => (await waitingFor(key)) === count, { timeoutMs: 60_000, message });
}

const projectionLock = (name: string) => advisoryLockKey('projection', name);
const buildLock = (name: string) => advisoryLockKey('projection', `${name}:build`);

async function statusOf(project: Project, name: string): Promise<ProjectionStatus> {
  const result = await runCli(['status', '--json'], { cwd: project.dir, env });
  expect(result).toMatchObject({ code: 0, stderr: '' });
  return (JSON.parse(result.stdout) as ProjectionStatus[]).find((status) => status.name === name)!;
}

async function buildPosition(name: string): Promise<bigint | null> {
  const { rows } = await db.pool.query<{ position: string }>(
    'select position::text from projd.checkpoints where projection = $1 and part = 0',
    [`${name}:build`],
  );
  return rows[0] ? BigInt(rows[0].position) : null;
}

async function leftoverSchemas(): Promise<string[]> {
  const { rows } = await db.pool.query<{ nspname: string }>(
    `select nspname from pg_namespace where nspname like 'projd\\_build\\_%' or nspname like 'projd\\_old\\_%' order by 1`,
  );
  return rows.map((row) => row.nspname);
}

const liveLine = (name: string) => (line: LogLine) =>
  line.msg === 'projection.state' && line.projection === name && line.to === 'live';
const startsWith = (prefix: string, projection?: string) => (line: LogLine) =>
  String(line.msg).startsWith(prefix) && (projection === undefined || line.projection === projection);
const setUpLines = (daemon: Daemon, projection: string) =>
  daemon.logs().filter((line) => line.msg === 'projection.setup' && line.projection === projection);

/**
 * The daemons and held locks of one test: each daemon started through it is stopped at the end
 * (exit 0, as on any signal), and each lock released, whatever happened.
 */
function createScene() {
  const daemons: Daemon[] = [];
  const holds: { release(): Promise<void> }[] = [];
  return {
    start(project: { dir: string }): Daemon {
      const daemon = startDaemon(['run'], { cwd: project.dir, env });
      daemons.push(daemon);
      return daemon;
    },
    /** Starts a daemon and waits until it serves `name` live. */
    async startServing(project: { dir: string }, name: string): Promise<Daemon> {
      const daemon = this.start(project);
      await daemon.waitForLog(liveLine(name));
      return daemon;
    },
    /** Kills it for real, and forgets it: it has no exit code to check. */
    async kill9(daemon: Daemon): Promise<void> {
      await daemon.kill9();
      daemons.splice(daemons.indexOf(daemon), 1);
    },
    async hold(key: number) {
      const held = await holdLock(key);
      holds.push(held);
      return held;
    },
    async stop(): Promise<void> {
      await Promise.all(holds.map((hold) => hold.release()));
      const codes = await Promise.all(daemons.map((daemon) => daemon.stop()));
      expect(codes).toEqual(daemons.map(() => 0));
    },
  };
}

// Several daemons each, on a busy machine: longer test timeouts.
describe('a version bump with blue/green rebuilds', () => {
  it(
    'keeps the old version serving while the new one builds, then swaps in the new tables level with the old',
    { timeout: 120_000 },
    async () => {
      const name = 'tally_live';
      const [oldHold, newHold] = [7101, 7102];
      await append(name, 1000);
      const metricsPort = await freePort();
      const v1 = await projectOf(name, 1);
      const v2 = await projectOf(name, 2, { metricsPort });
      const scene = createScene();
      try {
        const a = await scene.startServing(v1, name);
        await expectExact(name, 1);

        // Version 2's build stops at this event, past its first batches, until the test lets it go on.
        const building = await scene.hold(newHold);
        await append(name, 1, { hold: newHold, holdVersion: 2 });
        await waitFor(() => exactly(name, 1), { timeoutMs: 30_000, message: 'version 1 applied the held event' });

        const b = scene.start(v2);
        expect(await b.waitForLog(startsWith('build.started'))).toMatchObject({
          projection: name,
          msg: `build.started: version 2 builds in schema projd_build_${name}`,
        });
        await untilWaiting(newHold, 1, 'the build to wait at the held event');
        expect(b.logs().find(startsWith('projection.building'))).toMatchObject({ projection: name, version: 2, storedVersion: 1 });

        const during = await statusOf(v2, name);
        expect(during).toMatchObject({
          version: 2,
          storedVersion: 1,
          rebuildPending: true,
          build: { version: 2, schema: `projd_build_${name}`, failedEvents: 0 },
        });
        expect(during.state).toBe('live'); // version 1 serves, and has applied every event
        expect(Number(during.build!.position)).toBeGreaterThan(0);
        // What version 2 has built so far is in its own schema, and only there.
        const { rows: built } = await db.pool.query<{ built: number; events: number; versions: number[] }>(
          `select count(*)::int as built, array_agg(distinct version) as versions,
                  (select count(*)::int from projd.events where type = $1 and position <= $2) as events
             from projd_build_${name}.${name}_applied`,
          [`${name}.added`, during.build!.position],
        );
        expect(built[0]).toEqual({ built: built[0]!.events, events: expect.any(Number), versions: [2] });
        expect(built[0]!.events).toBeGreaterThan(0);
        expect((await tally(name, 1)).wrong).toBe(0);
        const table = await runCli(['status'], { cwd: v2.dir, env });
        expect(table.stdout).toMatch(new RegExp(`^${name} +2 \\(stored 1\\) .*version 1 serves while version 2 builds beside it$`, 'm'));
        const buildRow = `^  build +2 +\\S+ +${during.build!.position} .*building in schema projd_build_${name}`;
        expect(table.stdout).toMatch(new RegExp(buildRow, 'm'));
        const metrics = await waitFor(
          async () => {
            const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
            return text.includes(`projd_build_version{projection="${name}"} 2`) && text;
          },
          { timeoutMs: 30_000, message: 'the build version in /metrics' },
        );
        expect(metrics).toContain(`projd_projection_version{projection="${name}"} 1`);

        // Appended during the build: version 1 applies them to its tables, which stay the live ones.
        await append(name, 100);
        await waitFor(() => exactly(name, 1), { timeoutMs: 30_000, message: 'version 1 applied the events appended during the build' });

        // Now a swap that has to catch up. Version 1's next batch waits at a held event, so the
        // swap, which waits for the live projection's lock, waits for that batch to end.
        const serving = await scene.hold(oldHold);
        await append(name, 1, { hold: oldHold, holdVersion: 1 });
        await untilWaiting(oldHold, 1, 'version 1 to wait at its held event');
        await building.release();
        await untilWaiting(projectionLock(name), 1, 'the swap to wait for the live projection');
        // The build stops at another held event, so that it has not read what comes next when the swap takes its lock.
        const lastBatch = await scene.hold(newHold);
        await append(name, 1, { hold: newHold, holdVersion: 2 });
        await untilWaiting(newHold, 1, 'the build to wait at the second held event');
        await append(name, 30);
        await serving.release();
        await untilWaiting(buildLock(name), 1, 'the swap to wait for the build');
        await lastBatch.release();

        const swapped = await b.waitForLog(startsWith('build.swapped'));
        expect(swapped).toMatchObject({
          projection: name,
          msg: 'build.swapped: version 2 replaced version 1',
          fromVersion: 1,
          version: 2,
          caughtUp: 30, // the 30 events the build had not read: the swap applied them
          moved: [`${name}_applied`, `${name}_totals`],
          replaced: [`${name}_applied`, `${name}_totals`],
        });
        // Right at the swap, the new tables hold every event, those appended during the build included.
        await expectExact(name, 2);
        expect(await leftoverSchemas()).toEqual([]);
        expect(await a.waitForLog(startsWith('projection.version_behind', name))).toMatchObject({
          level: 50,
          version: 1,
          storedVersion: 2,
        });
        const after = await statusOf(v2, name);
        expect(after).toMatchObject({ version: 2, storedVersion: 2, rebuildPending: false, build: null, problem: null });

        // Version 2 serves on.
        await append(name, 50);
        await waitFor(() => exactly(name, 2), { timeoutMs: 30_000, message: 'version 2 applied the events appended after the swap' });
      } finally {
        await scene.stop();
      }
    },
  );

  it('goes on from the build checkpoint after a crash during the build', { timeout: 120_000 }, async () => {
    const name = 'tally_crash';
    const hold = 7201;
    await append(name, 1000);
    const v1 = await projectOf(name, 1);
    const v2 = await projectOf(name, 2);
    const scene = createScene();
    try {
      await scene.startServing(v1, name);

      const held = await scene.hold(hold);
      await append(name, 1, { hold, holdVersion: 2 });
      const crashed = scene.start(v2);
      await untilWaiting(hold, 1, 'the build to wait at the held event');
      const reached = BigInt((await statusOf(v2, name)).build!.position);
      expect(reached).toBeGreaterThan(0n);
      expect(setUpLines(crashed, `${name}:build`)).toMatchObject([{ setUp: 'created', version: 2 }]);
      await scene.kill9(crashed);
      await append(name, 40);

      const restarted = scene.start(v2);
      await restarted.waitForLog('daemon.started');
      // The killed daemon's session holds the build's lock, waiting at the held event: once
      // the event is let go, it finds its client gone and rolls back.
      await held.release();
      const positions: bigint[] = [];
      await waitFor(
        async () => {
          const position = await buildPosition(name);
          if (position !== null) positions.push(position);
          return restarted.logs().some(startsWith('build.swapped'));
        },
        { timeoutMs: 60_000, intervalMs: 20, message: 'the restarted build to swap' },
      );
      expect(positions.filter((position) => position < reached)).toEqual([]);
      expect(setUpLines(restarted, `${name}:build`)).toEqual([]);
      expect(restarted.logs().find(startsWith('build.swapped'))).toMatchObject({ msg: 'build.swapped: version 2 replaced version 1' });
      await expectExact(name, 2);
      expect(await leftoverSchemas()).toEqual([]);
    } finally {
      await scene.stop();
    }
  });

  it('starts the build over for a second version bump, and swaps in the newest', { timeout: 120_000 }, async () => {
    const name = 'tally_bumped';
    const hold = 7301;
    await append(name, 1000);
    const [v1, v2, v3] = [await projectOf(name, 1), await projectOf(name, 2), await projectOf(name, 3)];
    const scene = createScene();
    try {
      const a = await scene.startServing(v1, name);

      // Version 1's batch waits at a held event: version 2's swap waits for it, its build done.
      const serving = await scene.hold(hold);
      await append(name, 1, { hold, holdVersion: 1 });
      await untilWaiting(hold, 1, 'version 1 to wait at the held event');
      const b = scene.start(v2);
      await untilWaiting(projectionLock(name), 1, "version 2's swap to wait for the live projection");
      // Read with version 3 loaded, the build under way is still version 2's.
      expect((await statusOf(v3, name)).build).toMatchObject({ version: 2 });

      const c = scene.start(v3);
      expect(await c.waitForLog((line) => line.msg === 'projection.setup' && line.projection === `${name}:build`)).toMatchObject({
        version: 3,
        setUp: 'rebuilt',
      });
      // Version 2's build finds version 3's checkpoint and applies nothing more.
      expect(await b.waitForLog(startsWith('projection.version_behind', `${name}:build`))).toMatchObject({ version: 2, storedVersion: 3 });
      await untilWaiting(projectionLock(name), 2, "version 3's swap to wait for the live projection too");
      await serving.release();

      expect(await c.waitForLog(startsWith('build.swapped'))).toMatchObject({
        msg: 'build.swapped: version 3 replaced version 1',
        fromVersion: 1,
      });
      await expectExact(name, 3);
      expect(await b.waitForLog(startsWith('projection.version_behind', name))).toMatchObject({ version: 2, storedVersion: 3 });
      expect(await a.waitForLog(startsWith('projection.version_behind', name))).toMatchObject({ version: 1, storedVersion: 3 });
      expect(b.logs().filter(startsWith('build.swapped:'))).toEqual([]);
      // Its build loop ends, superseded: by version 3's build, or by version 3 live, whichever it saw first.
      await b.waitForLog((line) => String(line.msg).startsWith('build.superseded'));
      expect(b.logs().filter(startsWith('build.swapped_elsewhere'))).toEqual([]);
      expect(await statusOf(v3, name)).toMatchObject({ version: 3, storedVersion: 3, build: null, rebuildPending: false });
      expect(await leftoverSchemas()).toEqual([]);
    } finally {
      await scene.stop();
    }
    // Nothing any daemon did after the swap brought a build back.
    await expectExact(name, 3);
    expect(await leftoverSchemas()).toEqual([]);
  });

  it('keeps the daemon building the new version out of /readyz until the swap', { timeout: 120_000 }, async () => {
    const name = 'tally_ready';
    const hold = 7401;
    await append(name, 500);
    const metricsPort = await freePort();
    const v1 = await projectOf(name, 1);
    const v2 = await projectOf(name, 2, { metricsPort });
    const scene = createScene();
    try {
      await scene.startServing(v1, name);
      const held = await scene.hold(hold);
      await append(name, 1, { hold, holdVersion: 2 });

      const b = scene.start(v2);
      await b.waitForLog('http.listening');
      await untilWaiting(hold, 1, 'the build to wait at the held event');
      const building = await fetch(`http://127.0.0.1:${metricsPort}/readyz`);
      expect(building.status).toBe(503);
      expect(await building.text()).toBe(`not caught up yet: ${name}, ${name}:build\n`);

      await held.release();
      await b.waitForLog(startsWith('build.swapped'));
      await waitFor(async () => (await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status === 200, {
        timeoutMs: 30_000,
        message: '/readyz of the new version after the swap',
      });
      await expectExact(name, 2);
    } finally {
      await scene.stop();
    }
  });
});
