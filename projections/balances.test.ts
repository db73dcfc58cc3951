import { afterAll, expect, it } from 'vitest';
import { testProjection } from 'projd/testing';
import balances from './balances.js';

const t = await testProjection(balances);
afterAll(() => t.close());

it('keeps one balance per account', async () => {
  await t.given([
    { streamId: 'account-1', type: 'account.opened', data: { owner: 'Ada' } },
    { streamId: 'account-1', type: 'account.credited', data: { amount: 100 } },
    { streamId: 'account-1', type: 'account.debited', data: { amount: 30 } },
    { streamId: 'account-2', type: 'account.credited', data: { amount: 5 } },
  ]);
  expect(await t.query('select account_id, owner, balance from balances order by account_id')).toEqual([
    { account_id: 'account-1', owner: 'Ada', balance: '70' },
    { account_id: 'account-2', owner: null, balance: '5' },
  ]);
});
