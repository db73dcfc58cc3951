import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { appendLedgerEvents, countApplied, countEvents, expectLedgerExact, ledgerProjectionSource } from '../helpers/ledger.js';
import { writeProject } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

const db = await createTestDatabase();
let project: Awaited<ReturnType<typeof writeProject>>;

beforeAll(async () => {
  project = await writeProject({
    'projd.yaml': 'projections:\n  batchSize: 50\nmetrics:\n  port: 0\n',
    'projections/ledger.ts': await ledgerProjectionSource(),
  });
  await appendLedgerEvents(db.pool, { count: 10_000, streams: 100 });
});

afterAll(async () => {
  await project?.cleanup();
});

describe('two daemons on one database', () => {
  it('apply each event once, while events arrive and when one of them is killed', async () => {
    const env = { DATABASE_URL: db.url };
    const first = startDaemon(['run'], { cwd: project.dir, env });
    const second = startDaemon(['run'], { cwd: project.dir, env });

    // Live appends while both compete for the projection's lock, batch by batch.
    for (let i = 0; i < 10; i += 1) await appendLedgerEvents(db.pool, { count: 500, streams: 100 });
    await waitFor(async () => (await countApplied(db.pool)) === (await countEvents(db.pool)), {
      timeoutMs: 60_000,
      message: 'both daemons together applied every event',
    });

    // The survivor takes over whatever the killed one held, and stays live.
    await first.kill9();
    await appendLedgerEvents(db.pool, { count: 2_000, streams: 100 });
    await waitFor(async () => (await countApplied(db.pool)) === (await countEvents(db.pool)), {
      timeoutMs: 60_000,
      message: 'the surviving daemon applied the events appended after the kill',
    });
    expect(await second.stop()).toBe(0);
    await expectLedgerExact(db.pool);
  });
});
