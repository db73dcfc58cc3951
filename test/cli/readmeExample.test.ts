import { cp } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, startDaemon, type LogLine } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { writeProject, type Project } from '../helpers/project.js';
import { README_EXAMPLE_INSERTS } from '../helpers/readmeExample.js';
import { waitFor } from '../helpers/waitFor.js';

// The README's quick start, as a user follows it: a new empty database, the repository's own
// example projections, `projd run`, and the INSERTs the README shows.
const db = await createTestDatabase({ empty: true });
let project: Project;

beforeAll(async () => {
  project = await writeProject({ 'projd.yaml': 'metrics:\n  port: 0\n' });
  // The two examples only: projections/ is the user's, and may hold projections of their own.
  for (const file of ['balances.ts', 'deposits.yaml']) {
    await cp(path.join(REPO_ROOT, 'projections', file), project.path(`projections/${file}`));
  }
});

afterAll(async () => {
  await project?.cleanup();
});

const isLive = (name: string) => (line: LogLine) =>
  line.msg === 'projection.state' && line.projection === name && line.to === 'live';

describe('the README quick start', () => {
  it('projd run with the example projections applies the README INSERTs, then exits 0 on SIGTERM', async () => {
    const daemon = startDaemon(['run'], { cwd: project.dir, env: { DATABASE_URL: db.url } });
    await daemon.waitForLog(isLive('balances'), 30_000);
    await daemon.waitForLog(isLive('deposits'), 30_000);

    for (const insert of README_EXAMPLE_INSERTS) await db.pool.query(insert);

    const balances = await waitFor(
      async () => {
        const { rows } = await db.pool.query('select * from balances');
        return rows.length === 1 && Number(rows[0].balance) === 100 && rows;
      },
      { timeoutMs: 10_000, message: 'balances to show account-1 with balance 100' },
    );
    expect(balances).toEqual([expect.objectContaining({ account_id: 'account-1', owner: 'Ada', balance: '100' })]);
    const deposits = await waitFor(
      async () => {
        const { rows } = await db.pool.query('select * from deposits');
        return rows.length === 1 && rows;
      },
      { timeoutMs: 10_000, message: 'deposits to show account-1' },
    );
    expect(deposits).toEqual([{ account_id: 'account-1', count: 1, total: '100' }]);

    expect(await daemon.stop('SIGTERM')).toBe(0);
  });
});
