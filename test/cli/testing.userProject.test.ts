import { symlink } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { REPO_ROOT, runCli } from '../helpers/cli.js';
import { writeProject, type Project } from '../helpers/project.js';

// A user's project: projd installed (linked to this repository's build, as `npm install` would
// give it), a projection of their own and its test file, run with `npx vitest run`. The test
// imports `projd/testing` through the package's exports and runs on the suite's server, as it
// would with DATABASE_URL set.

const PROJECTION = `import { defineProjection } from 'projd';

type Events = { 'order.placed': { total: number } };

export default defineProjection<Events>({
  name: 'orders',
  version: 1,
  setup: 'create table orders (id text primary key, total bigint, status text not null)',
  handlers: {
    'order.placed': async (event, db) => {
      await db.query('insert into orders values ($1, $2, $3)', [event.streamId, event.data.total, 'placed']);
    },
    'order.*': async (event, db) => {
      await db.query('update orders set status = $2 where id = $1', [event.streamId, event.type.slice('order.'.length)]);
    },
  },
});
`;

const TEST = `import { afterAll, expect, it } from 'vitest';
import { testProjection } from 'projd/testing';
import orders from './orders.js';

const t = await testProjection(orders);
afterAll(() => t.close());

it('tracks each order and its latest status', async () => {
  await t.given([
    { streamId: 'order-1', type: 'order.placed', data: { total: 30 } },
    { streamId: 'order-1', type: 'order.shipped' },
    { streamId: 'order-2', type: 'order.placed', data: { total: 5 } },
  ]);
  expect(await t.query('select id, total, status from orders order by id')).toEqual([
    { id: 'order-1', total: '30', status: 'shipped' },
    { id: 'order-2', total: '5', status: 'placed' },
  ]);
});
`;

let project: Project | undefined;
afterEach(async () => {
  await project?.cleanup();
  project = undefined;
});

async function userProject(test: string): Promise<Project> {
  const created = await writeProject({
    'package.json': JSON.stringify({ name: 'shop', type: 'module', private: true }),
    'projections/orders.ts': PROJECTION,
    'projections/orders.test.ts': test,
  });
  // Their own devDependency; its dependencies resolve from where it really lives.
  await symlink(path.join(REPO_ROOT, 'node_modules', 'vitest'), created.path('node_modules/vitest'), 'dir');
  return created;
}

const vitest = path.join(REPO_ROOT, 'node_modules', 'vitest', 'vitest.mjs');

describe('projd/testing in a user project', () => {
  it('runs the user’s projection test with vitest, from the built package', async () => {
    project = await userProject(TEST);
    const result = await runCli(['run'], {
      cwd: project.dir,
      bin: vitest,
      env: { DATABASE_URL: inject('postgresAdminUrl') },
      timeoutMs: 120_000,
    });
    expect(result.code, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`).toBe(0);
    expect(result.stdout).toMatch(/Tests\s+1 passed/);
  });
});
