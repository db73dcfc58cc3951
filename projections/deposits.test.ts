import { afterAll, expect, it } from 'vitest';
import { testProjection } from 'projd/testing';

// A YAML projection is tested by its path.
const t = await testProjection(new URL('./deposits.yaml', import.meta.url));
afterAll(() => t.close());

it('counts and sums the credits of each account, and ignores other events', async () => {
  await t.given([
    { streamId: 'account-1', type: 'account.opened', data: { owner: 'Ada' } },
    { streamId: 'account-1', type: 'account.credited', data: { amount: 100 } },
    { streamId: 'account-1', type: 'account.credited', data: { amount: 20 } },
    { streamId: 'account-1', type: 'account.debited', data: { amount: 50 } },
  ]);
  expect(await t.query('select account_id, count, total from deposits')).toEqual([
    { account_id: 'account-1', count: 2, total: '120' },
  ]);
});

it('adds up several credits of one account in one batch, and across batches', async () => {
  await t.given([
    { streamId: 'account-2', type: 'account.credited', data: { amount: 5 } },
    { streamId: 'account-3', type: 'account.credited', data: { amount: 7 } },
    { streamId: 'account-2', type: 'account.credited', data: { amount: 6 } },
  ]);
  await t.given([{ streamId: 'account-2', type: 'account.credited', data: { amount: 1 } }]);
  expect(await t.query(`select account_id, count, total from deposits where account_id <> 'account-1' order by account_id`)).toEqual([
    { account_id: 'account-2', count: 3, total: '12' },
    { account_id: 'account-3', count: 1, total: '7' },
  ]);
});
