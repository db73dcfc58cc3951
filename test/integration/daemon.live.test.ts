import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLiveLine, startDaemon } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { countApplied, creditLedger, countEvents, expectLedgerExact, ledgerProjectionSource } from '../helpers/ledger.js';
import { writeProject } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

const db = await createTestDatabase();
let project: Awaited<ReturnType<typeof writeProject>>;

beforeAll(async () => {
  // The fallback interval is far longer than any wait below: only notifications can deliver.
  project = await writeProject({
    'projd.yaml': 'projections:\n  pollInterval: 30m\nmetrics:\n  port: 0\n',
    'projections/ledger.ts': await ledgerProjectionSource(),
  });
});

afterAll(async () => {
  await project?.cleanup();
});

const credit = (streamId: string, version: number) => creditLedger(db.pool, streamId, version);

describe('projd run, live', () => {
  it('applies an appended event through NOTIFY alone, also after the listener reconnects', async () => {
    const daemon = startDaemon(['run'], { cwd: project.dir, env: { DATABASE_URL: db.url } });
    await daemon.waitForLog(isLiveLine, 30_000);

    await credit('live-1', 1);
    await waitFor(async () => (await countApplied(db.pool)) === 1, { timeoutMs: 10_000, message: 'event applied' });

    // Cut the listener's connection and append at once: the notification may be lost while it
    // reconnects, so the daemon must LISTEN again and then run a pass by itself.
    const { rowCount } = await db.pool.query(
      "select pg_terminate_backend(pid) from pg_stat_activity where application_name like 'projd listener %' and datname = current_database()",
    );
    expect(rowCount).toBe(1);
    await credit('live-1', 2);
    await daemon.waitForLog('listener.reconnected', 10_000);
    await waitFor(async () => (await countApplied(db.pool)) === 2, { timeoutMs: 10_000, message: 'event appended during reconnect applied' });

    await credit('live-2', 1);
    await waitFor(async () => (await countApplied(db.pool)) === 3, { timeoutMs: 10_000, message: 'event after reconnect applied' });

    expect(await daemon.stop()).toBe(0);
    expect(await countEvents(db.pool)).toBe(3);
    await expectLedgerExact(db.pool);
  });
});
