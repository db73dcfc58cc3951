import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { appendLedgerEvents, ledgerProjectionSource } from '../helpers/ledger.js';
import { writeProject, type Project } from '../helpers/project.js';

// `projd status` only reads projd's tables: a projection file that cannot be loaded is named
// in one stderr line and left out, and the others are still reported.

const BROKEN = `import { defineProjection } from 'projd';
export default defineProjection({ name: 'broken', version: 1, handlers: { 'x': async () => {} }, });,
`;

const db = await createTestDatabase();
let project: Project;

beforeAll(async () => {
  project = await writeProject({
    'projd.yaml': 'metrics:\n  port: 0\n',
    'projections/broken.ts': BROKEN,
    'projections/ledger.ts': await ledgerProjectionSource(),
  });
  await appendLedgerEvents(db.pool, { count: 3, streams: 3 });
});

afterAll(async () => {
  await project?.cleanup();
});

const status = (args: string[]) => runCli(['status', ...args], { cwd: project.dir, env: { DATABASE_URL: db.url } });

describe('projd status with a projection file that cannot be loaded', () => {
  it('reports the others, names the file in one line, and exits 0', async () => {
    const json = await status(['--json']);
    expect(json.stderr).toMatch(/^projd: left out of the report: projections\/broken\.ts: cannot load: [^\n]+\n$/);
    expect(json.code).toBe(0);
    const statuses = JSON.parse(json.stdout) as { name: string; state: string; lagEvents: string }[];
    expect(statuses.map(({ name, state, lagEvents }) => ({ name, state, lagEvents }))).toEqual([
      { name: 'ledger', state: 'stopped', lagEvents: '3' },
    ]);

    const table = await status([]);
    expect(table.stderr).toBe(json.stderr);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^ledger +1 +stopped +0 +3 +3 /m);
  });

  it('fails --check with exit 1: a daemon started now would refuse to run', async () => {
    const result = await status(['--check']);
    expect(result.stderr).toMatch(
      /^projd: check failed: left out of the report: projections\/broken\.ts: cannot load: [^\n]+\n$/,
    );
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^ledger +1 +stopped /m);
  });
});
