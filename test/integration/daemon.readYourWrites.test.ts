import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/embeddedPostgres.js';
import { closeWaitFor, isUserError, isWaitTimeoutError, waitFor } from '../../src/index.js';
import { appendEvents } from '../../src/store/appendEvents.js';
import { runCli, startDaemon, type Daemon } from '../helpers/cli.js';
import { startIsolatedPostgres } from '../helpers/database.js';
import { writeProject, type Project } from '../helpers/project.js';
import { waitFor as waitForCondition } from '../helpers/waitFor.js';

// One test holds an append's transaction open, which holds back the xmin horizon of the whole
// server: this file gets a server of its own.
const db = await startIsolatedPostgres();
let project: Project;
let daemon: Daemon;
let baseUrl: string;

/** Every projection reads account.credited but `closures`, which reads another type only. */
const PROJECTIONS = ['balances', 'deposits', 'ledger', 'closures'];
const PARTS = 4;

const ledger = `
import { defineProjection } from 'projd';
export default defineProjection({
  name: 'ledger',
  version: 1,
  partitions: ${PARTS},
  setup: 'create table if not exists ledger (account_id text primary key, total bigint not null)',
  handlers: {
    'account.credited': async (event, db) => {
      await db.query(
        \`insert into ledger values ($1, $2) on conflict (account_id) do update set total = ledger.total + excluded.total\`,
        [event.streamId, event.data.amount],
      );
    },
  },
});
`;

const closures = `
import { defineProjection } from 'projd';
export default defineProjection({
  name: 'closures',
  version: 1,
  setup: 'create table if not exists closures (account_id text primary key)',
  handlers: {
    'account.closed': async (event, db) => {
      await db.query('insert into closures values ($1)', [event.streamId]);
    },
  },
});
`;

// Halts (onError: stop) on a poisoned event, so a wait past it times out.
const fragile = `
import { defineProjection } from 'projd';
export default defineProjection({
  name: 'fragile',
  version: 1,
  onError: 'stop',
  maxAttempts: 1,
  handlers: {
    'fragile.poked': async (event) => {
      if (event.data.poison) throw new Error('poisoned');
    },
  },
});
`;

beforeAll(async () => {
  const port = await freePort();
  project = await writeProject({
    // A long poll interval: the runners move on notifications alone, as the waiters do.
    'projd.yaml': `metrics:\n  port: ${port}\nprojections:\n  pollInterval: 60s\n`,
    'projections/balances.ts': await readFile(new URL('../../projections/balances.ts', import.meta.url), 'utf8'),
    'projections/deposits.yaml': await readFile(new URL('../../projections/deposits.yaml', import.meta.url), 'utf8'),
    'projections/ledger.ts': ledger,
    'projections/closures.ts': closures,
    'projections/fragile.ts': fragile,
  });
  daemon = startDaemon(['run'], { cwd: project.dir, env: { DATABASE_URL: db.url } });
  await daemon.waitForLog('daemon.started', 30_000);
  baseUrl = `http://127.0.0.1:${port}`;
  // waitFor knows a projection by its checkpoint, which each runner's first pass creates.
  await waitForCondition(
    async () => (await db.pool.query("select count(distinct projection)::int as n from projd.checkpoints")).rows[0].n === 5,
    { timeoutMs: 30_000, message: 'every projection to be set up' },
  );
});

afterAll(async () => {
  await closeWaitFor(db.pool);
  await daemon?.stop();
  await project?.cleanup();
  await db.stop();
});

async function credit(account: string, amount: number): Promise<bigint> {
  const { positions } = await appendEvents(db.pool, account, [{ type: 'account.credited', data: { amount } }]);
  return positions[0]!;
}

/** Each read model's total for the account, and whether `closures` applied anything. */
async function readModels(account: string): Promise<Record<string, number>> {
  const { rows } = await db.pool.query<Record<string, string | null>>(
    `select (select balance from balances where account_id = $1) as balances,
            (select total from deposits where account_id = $1) as deposits,
            (select total from ledger where account_id = $1) as ledger,
            (select count(*) from closures) as closures`,
    [account],
  );
  return Object.fromEntries(Object.entries(rows[0]!).map(([key, value]) => [key, Number(value ?? 0)]));
}

/** Sessions whose last statement LISTENed on projd_progress (pg-listen's probes come 30 s later). */
async function progressListeners(): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(
    "select count(*)::int as n from pg_stat_activity where query ilike 'listen%projd_progress%'",
  );
  return rows[0]!.n;
}

async function poisonFragile(): Promise<bigint> {
  const poisoned = await appendEvents(db.pool, 'fragile-1', [{ type: 'fragile.poked', data: { poison: true } }], { expectedVersion: 'any' });
  const after = await appendEvents(db.pool, 'fragile-1', [{ type: 'fragile.poked', data: {} }], { expectedVersion: 'any' });
  expect(after.positions[0]).toBeGreaterThan(poisoned.positions[0]!);
  return after.positions[0]!;
}

let fragileBehind: bigint | undefined;
/** A position `fragile` never reaches: it halts on the poisoned event before it. */
async function positionFragileNeverReaches(): Promise<bigint> {
  fragileBehind ??= await poisonFragile();
  return fragileBehind;
}

describe('a writer that appends and then waits', () => {
  it('never reads a stale row, through waitFor, with four projections (one split, one reading other types only)', async () => {
    // Writers on disjoint accounts, concurrently: each knows its accounts' totals exactly.
    const writer = async (id: number) => {
      const totals = new Map<string, number>();
      for (let i = 1; i <= 15; i += 1) {
        const account = `account-${id}-${i % 4}`;
        const position = await credit(account, i);
        totals.set(account, (totals.get(account) ?? 0) + i);
        const result = await waitFor(db.pool, { projections: PROJECTIONS, position }, { timeout: '20s' });
        expect(result.position).toBe(position);
        const expected = totals.get(account)!;
        expect(await readModels(account)).toEqual({ balances: expected, deposits: expected, ledger: expected, closures: 0 });
      }
    };
    await Promise.all([1, 2, 3].map(writer));
    // The writers' waits shared one LISTEN connection beside the pool, open until closeWaitFor.
    expect(await progressListeners()).toBe(2); // the daemon's and the pool's
    await closeWaitFor(db.pool);
    await waitForCondition(async () => (await progressListeners()) === 1, { message: "the pool's listener to close" });
  });

  it('never reads a stale row through GET /wait, and is answered 200 with JSON', async () => {
    let total = 0;
    for (let i = 1; i <= 10; i += 1) {
      const position = await credit('account-http', i);
      total += i;
      const query = PROJECTIONS.map((name) => `projection=${name}`).join('&');
      const response = await fetch(`${baseUrl}/wait?${query}&position=${position}&timeout=20s`);
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ position: String(position), projections: PROJECTIONS });
      expect(await readModels('account-http')).toEqual({ balances: total, deposits: total, ledger: total, closures: 0 });
    }
  });

  it('returns at once for an event applied long before', async () => {
    const position = await credit('account-old', 1);
    await waitFor(db.pool, { projections: PROJECTIONS, position }, { timeout: '20s' });
    const again = await waitFor(db.pool, { projections: ['closures', 'ledger'], position }, { timeout: '20s' });
    expect(again.position).toBe(position);
  });

  it('prepares its check on the pool’s connection only when asked to (preparedStatements)', async () => {
    // One connection: the check and the look at its prepared statements run on the same one.
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    const prepared = async () =>
      (await pool.query("select count(*)::int as n from pg_prepared_statements where name = 'projd_read_wait_state'")).rows[0]!.n;
    try {
      const position = await credit('account-prepared', 1);
      await waitFor(pool, { projections: PROJECTIONS, position }, { timeout: '20s' });
      expect(await prepared()).toBe(0);
      await waitFor(pool, { projections: PROJECTIONS, position }, { timeout: '20s', preparedStatements: true });
      expect(await prepared()).toBe(1);
      const later = await credit('account-prepared', 2);
      expect((await waitFor(pool, { projections: PROJECTIONS, position: later }, { timeout: '20s', preparedStatements: true })).position).toBe(later);
    } finally {
      await closeWaitFor(pool);
      await pool.end();
    }
  });
});

describe('a wait that times out', () => {
  it('waits for an append that has not committed yet, then returns once it has been applied', async () => {
    const writer = await db.pool.connect();
    let position: bigint;
    try {
      await writer.query('begin');
      [position] = (await appendEvents(writer, 'account-late', [{ type: 'account.credited', data: { amount: 7 } }])).positions as [bigint];
      const early = waitFor(db.pool, { projections: PROJECTIONS, position }, { timeout: 300 });
      await expect(early).rejects.toThrow(`(the event at position ${position} was not committed yet): still behind: balances`);
      await writer.query('commit');
    } finally {
      await writer.query('rollback').catch(() => undefined);
      writer.release();
    }
    await waitFor(db.pool, { projections: PROJECTIONS, position }, { timeout: '20s' });
    expect(await readModels('account-late')).toEqual({ balances: 7, deposits: 7, ledger: 7, closures: 0 });
  });

  it('rejects waitFor with a WaitTimeoutError naming the projection behind', async () => {
    const position = await positionFragileNeverReaches();
    const waiting = waitFor(db.pool, { projections: ['balances', 'fragile'], position }, { timeout: 300 });
    await expect(waiting).rejects.toSatisfy(isWaitTimeoutError);
    await expect(waiting).rejects.toThrow(/timed out after 0\.3s waiting for position \d+: still behind: fragile \(at /);
  });

  it('answers GET /wait with 504 naming the projection behind', async () => {
    const position = await positionFragileNeverReaches();
    const response = await fetch(`${baseUrl}/wait?projection=balances&projection=fragile&position=${position}&timeout=300ms`);
    expect(response.status).toBe(504);
    const body = (await response.json()) as { behind: { projection: string }[] };
    expect(body).toMatchObject({ position: String(position), committed: true });
    expect(body.behind.map((entry) => entry.projection)).toEqual(['fragile']);
  });

  it('exits projd wait with 1 naming the projection behind', async () => {
    const position = await positionFragileNeverReaches();
    const result = await runCli(['wait', 'balances', 'fragile', '--position', String(position), '--timeout', '300ms'], {
      cwd: project.dir,
      env: { DATABASE_URL: db.url },
    });
    expect(result.stderr).toMatch(/^projd: wait: timed out after 0\.3s waiting for position \d+: still behind: fragile \(at .*\)\n$/);
    expect(result.code).toBe(1);
  });
});

describe('projd wait', () => {
  it('exits 0 once the projections have applied the event', async () => {
    const position = await credit('account-cli', 5);
    const result = await runCli(['wait', ...PROJECTIONS, '--position', String(position), '--timeout', '20s', '--json'], {
      cwd: project.dir,
      env: { DATABASE_URL: db.url },
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ applied: true, position: String(position), projections: PROJECTIONS });
    expect(await readModels('account-cli')).toEqual({ balances: 5, deposits: 5, ledger: 5, closures: 0 });
  });
});

describe('bad input', () => {
  const cli = (args: string[]) => runCli(['wait', ...args], { cwd: project.dir, env: { DATABASE_URL: db.url } });

  it('an unknown projection: exit 2, 404, a UserError', async () => {
    const position = await credit('account-bad', 1);
    const result = await cli(['balances', 'nosuch', '--position', String(position)]);
    expect(result.stderr).toBe("projd: unknown projection 'nosuch': the store has no checkpoint of that name (has a daemon run it?)\n");
    expect(result.code).toBe(2);
    const response = await fetch(`${baseUrl}/wait?projection=nosuch&position=${position}`);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: 'unknown projection: nosuch; this daemon runs balances, closures, deposits, fragile, ledger' });
    await expect(waitFor(db.pool, { projections: ['nosuch'], position })).rejects.toSatisfy(isUserError);
  });

  it('a position that is no position: exit 2, 400, a UserError', async () => {
    const result = await cli(['balances', '--position', 'abc']);
    expect(result.stderr).toBe("projd: option '--position <position>' argument 'abc' is invalid. Expected an event's position, an integer from 1, as projd append prints it.\n");
    expect(result.code).toBe(2);
    for (const query of ['position=abc', 'position=0', 'position=-1', '']) {
      const response = await fetch(`${baseUrl}/wait?projection=balances&${query}`);
      expect(response.status, query).toBe(400);
      expect(((await response.json()) as { error: string }).error).toMatch(/^position must be an event's position/);
    }
    await expect(waitFor(db.pool, { projections: ['balances'], position: 0 })).rejects.toThrow(/^waitFor: position must be/);
  });

  it('a position above the head: exit 2, 400, a UserError', async () => {
    const far = 1_000_000_000n;
    const result = await cli(['balances', '--position', String(far)]);
    expect(result.stderr).toMatch(/^projd: position 1000000000 is above the store's head \(\d+\): no event has it yet\n$/);
    expect(result.code).toBe(2);
    const response = await fetch(`${baseUrl}/wait?projection=balances&position=${far}`);
    expect(response.status).toBe(400);
    await expect(waitFor(db.pool, { projections: ['balances'], position: far })).rejects.toSatisfy(isUserError);
  });

  it('a preparedStatements that is not true or false: a UserError', async () => {
    const wait = waitFor(db.pool, { projections: ['balances'], position: 1 }, { preparedStatements: 'yes' as unknown as boolean });
    await expect(wait).rejects.toThrow('waitFor: preparedStatements must be true or false, got "yes"');
    await expect(wait).rejects.toSatisfy(isUserError);
  });

  it('a timeout that is no duration: exit 2 naming the flag, 400', async () => {
    const result = await cli(['balances', '--position', '1', '--timeout', '5']);
    expect(result.stderr).toBe("projd: --timeout must be a duration from 1ms to 596h, such as 250ms, 5s, 2m or 1h, got \"5\"\n");
    expect(result.code).toBe(2);
    const response = await fetch(`${baseUrl}/wait?projection=balances&position=1&timeout=5`);
    expect(response.status).toBe(400);
  });
});

describe('a projection halted on an event', () => {
  it('passes it when it is skipped, and its waiters hear of it though no batch follows', async () => {
    const env = { DATABASE_URL: db.url };
    await positionFragileNeverReaches();
    const halted = async () => {
      const { rows } = await db.pool.query<{ blocked_by: string | null }>(
        "select blocked_by::text from projd.checkpoints where projection = 'fragile'",
      );
      return rows[0]?.blocked_by ?? null;
    };
    const first = await waitForCondition(halted, { timeoutMs: 20_000, message: 'fragile to halt on the poisoned event' });
    expect((await runCli(['failed', 'skip', first], { cwd: project.dir, env })).code).toBe(0);
    // The last event of the store: once it is skipped, no batch moves the checkpoint after it.
    const { positions } = await appendEvents(db.pool, 'fragile-1', [{ type: 'fragile.poked', data: { poison: true } }], { expectedVersion: 'any' });
    const last = positions[0]!;
    const second = await waitForCondition(async () => {
      const id = await halted();
      return id !== null && id !== first && id;
    }, { timeoutMs: 20_000, message: 'fragile to halt on the second poisoned event' });
    const waiting = waitFor(db.pool, { projections: ['fragile'], position: last }, { timeout: '20s' });
    expect((await runCli(['failed', 'skip', second], { cwd: project.dir, env })).code).toBe(0);
    await expect(waiting).resolves.toMatchObject({ position: last });
  });
});
