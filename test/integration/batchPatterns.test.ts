import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { compileYamlProjection } from '../../src/projection/compileYamlProjection.js';
import { testProjection, type ProjectionTest } from '../../src/testing/index.js';

// The batch handler patterns of docs/projections.md, run as written: several events of one
// batch touching one row (sums, last write wins, strict per-event order).
const databaseUrl = inject('postgresAdminUrl');
const DOCS = readFileSync(new URL('../../docs/projections.md', import.meta.url), 'utf8');

/** The YAML block of the docs that starts with `# projections/<file>`, compiled. */
function documented(file: string) {
  const block = [...DOCS.matchAll(/```yaml\n([\s\S]*?)```/g)].map((match) => match[1]!).find((text) => text.startsWith(`# projections/${file}\n`));
  if (block === undefined) throw new Error(`docs/projections.md has no block for projections/${file}`);
  return compileYamlProjection(block, `docs/projections.md (${file})`);
}

const tests: ProjectionTest[] = [];
afterAll(async () => {
  for (const t of tests) await t.close();
});

async function run(file: string): Promise<ProjectionTest> {
  const t = await testProjection(documented(file), { databaseUrl });
  tests.push(t);
  return t;
}

describe('batch handler patterns of the docs', () => {
  it('the docs show the deposits example as it ships', () => {
    const shipped = readFileSync(new URL('../../projections/deposits.yaml', import.meta.url), 'utf8');
    const { batch, eventTypes } = documented('deposits.yaml');
    expect(compileYamlProjection(shipped, 'projections/deposits.yaml')).toMatchObject({ batch, eventTypes });
  });

  it('sums and counts with group by, over several events of one account in one batch', async () => {
    const t = await run('deposits.yaml');
    await t.given([
      { streamId: 'a-1', type: 'account.credited', data: { amount: 100 } },
      { streamId: 'a-2', type: 'account.credited', data: { amount: 1 } },
      { streamId: 'a-1', type: 'account.credited', data: { amount: 20 } },
      { streamId: 'a-1', type: 'account.debited', data: { amount: 50 } },
    ]);
    await t.given([{ streamId: 'a-1', type: 'account.credited', data: { amount: 3 } }]);
    expect(await t.query('select account_id, count, total from deposits order by account_id')).toEqual([
      { account_id: 'a-1', count: 3, total: '123' },
      { account_id: 'a-2', count: 1, total: '1' },
    ]);
  });

  it('last write wins with distinct on … order by position desc', async () => {
    const t = await run('account_owners.yaml');
    await t.given([
      { streamId: 'a-1', type: 'account.opened', data: { owner: 'Ada' } },
      { streamId: 'a-2', type: 'account.opened', data: { owner: 'Bob' } },
      { streamId: 'a-1', type: 'account.renamed', data: { owner: 'Ada L.' } },
      { streamId: 'a-1', type: 'account.renamed', data: { owner: 'Ada Lovelace' } },
    ]);
    await t.given([{ streamId: 'a-2', type: 'account.renamed', data: { owner: 'Bob B.' } }]);
    expect(await t.query('select account_id, owner from account_owners order by account_id')).toEqual([
      { account_id: 'a-1', owner: 'Ada Lovelace' },
      { account_id: 'a-2', owner: 'Bob B.' },
    ]);
  });

  it('strict per-event order with a window: the lowest balance reached inside a batch', async () => {
    const t = await run('account_lows.yaml');
    await t.given([
      { streamId: 'a-1', type: 'account.credited', data: { amount: 100 } },
      { streamId: 'a-1', type: 'account.debited', data: { amount: 130 } }, // -30, then back up
      { streamId: 'a-1', type: 'account.credited', data: { amount: 50 } },
    ]);
    await t.given([
      { streamId: 'a-1', type: 'account.debited', data: { amount: 40 } }, // -20 from 20: above -30
      { streamId: 'a-1', type: 'account.credited', data: { amount: 5 } },
    ]);
    expect(await t.query('select account_id, balance, lowest from account_lows')).toEqual([
      { account_id: 'a-1', balance: '-15', lowest: '-30' },
    ]);
  });
});
