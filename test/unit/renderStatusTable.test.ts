import { describe, expect, it } from 'vitest';
import { formatSeconds, renderStatusTable } from '../../src/cli/render.js';
import type { ProjectionStatus } from '../../src/status/readStatusReport.js';
import { projectionStatus } from '../helpers/fixtures.js';

function status(overrides: Partial<ProjectionStatus>): ProjectionStatus {
  return projectionStatus({ position: '1500', headPosition: '1500', ...overrides });
}

describe('renderStatusTable', () => {
  it('prints one aligned row per projection, a row per state', () => {
    const table = renderStatusTable([
      status({ name: 'balances' }),
      status({
        name: 'deposits',
        state: 'catching_up',
        version: 2,
        position: '200',
        lagEvents: '1300',
        lagSeconds: 42.7,
        owner: { pid: 812, applicationName: 'projd daemon web-1:812' },
      }),
      status({
        name: 'ledger',
        state: 'stalled',
        position: '1499',
        lagEvents: '1',
        lagSeconds: 3.25,
        stalledBy: {
          pid: 4242,
          database: 'shop',
          user: 'app',
          applicationName: null,
          state: 'idle in transaction',
          transactionStartedAt: '2025-01-01T00:00:00.000Z',
          transactionAgeSeconds: 3725,
          queryStartedAt: '2025-01-01T00:00:00.000Z',
          query: 'select pg_current_xact_id()',
        },
      }),
      status({
        name: 'invoices',
        state: 'failed',
        position: '900',
        lagEvents: '600',
        lagSeconds: 7200,
        failedEvents: 2,
        blockedBy: '17',
        lastError: 'handler threw: amount\nmust be positive',
      }),
      status({
        name: 'audit',
        storedVersion: null,
        state: 'stopped',
        position: '0',
        lagEvents: '1500',
        lagSeconds: 90_000,
        updatedAt: null,
      }),
    ]);
    expect(table).toBe(
      [
        'NAME      VERSION       STATE        POSITION  HEAD   LAG  LAG TIME  PARKED  OWNER      NOTE',
        'balances  1             live             1500  1500     0        0s       0  -',
        'deposits  2 (stored 1)  catching_up       200  1500  1300       42s       0  web-1:812',
        'ledger    1             stalled          1499  1500     1      3.3s       0  -          held back by pid 4242 (idle in transaction, open 1h 2m, database shop): select pg_current_xact_id()',
        'invoices  1             failed            900  1500   600     2h 0m       2  -          stopped at failed event 17: handler threw: amount must be positive',
        'audit     1             stopped             0  1500  1500     1d 1h       0  -',
        '',
      ].join('\n'),
    );
  });

  it('says why in NOTE: a pending rebuild, a problem', () => {
    const table = renderStatusTable([
      status({ name: 'a', version: 2, storedVersion: 1, rebuildPending: true, state: 'stopped' }),
      status({ name: 'b', problem: 'its handlers read other event types …' }),
    ]);
    const [, first, second] = table.split('\n');
    expect(first).toMatch(/^a +2 \(stored 1\) +stopped .* - +rebuild pending: version 2 loaded, store at 1; a daemon restart rebuilds it$/);
    expect(second).toMatch(/^b +1 +live .* - +its handlers read other event types …$/);
  });

  it('prints a blue/green build in a row of its own under its projection, which says what serves', () => {
    const build = {
      version: 2,
      state: 'catching_up' as const,
      position: '700',
      lagEvents: '800',
      lagSeconds: 12,
      failedEvents: 1,
      updatedAt: '2025-01-01T00:00:00.000Z',
      owner: { pid: 812, applicationName: 'projd daemon web-1:812' },
      blockedBy: null,
      lastError: null,
      lastErrorAt: null,
      schema: 'projd_build_balances',
    };
    const table = renderStatusTable([
      status({ name: 'balances', version: 2, storedVersion: 1, rebuildPending: true, build }),
      status({ name: 'ledger', version: 3, storedVersion: 2, rebuildPending: true, build: { ...build, version: 3, state: 'failed', blockedBy: '17' } }),
      status({ name: 'orders', version: 2, storedVersion: 1, rebuildPending: true, build: { ...build, lastError: 'deadlock\ndetected' } }),
    ]);
    expect(table.split('\n')).toEqual([
      'NAME      VERSION       STATE        POSITION  HEAD  LAG  LAG TIME  PARKED  OWNER      NOTE',
      'balances  2 (stored 1)  live             1500  1500    0        0s       0  -          version 1 serves while version 2 builds beside it',
      '  build   2             catching_up       700        800       12s       1  web-1:812  building in schema projd_build_balances; swapped in once caught up',
      'ledger    3 (stored 2)  live             1500  1500    0        0s       0  -          version 2 serves while version 3 builds beside it',
      '  build   3             failed            700        800       12s       1  web-1:812  stopped at failed event 17',
      'orders    2 (stored 1)  live             1500  1500    0        0s       0  -          version 1 serves while version 2 builds beside it',
      '  build   2             catching_up       700        800       12s       1  web-1:812  last error: deadlock detected',
      '',
    ]);
  });

  it('names an owner that is not a projd daemon by pid', () => {
    const table = renderStatusTable([status({ owner: { pid: 77, applicationName: 'psql' } })]);
    expect(table.split('\n')[1]).toContain('pid 77 (psql)');
  });
});

describe('formatSeconds', () => {
  it('keeps two units at most', () => {
    expect([0, 0.04, 2.46, 59.9, 61, 3599, 3600, 86_399, 90_061].map(formatSeconds)).toEqual([
      '0s',
      '<0.1s',
      '2.5s',
      '59s',
      '1m 1s',
      '59m 59s',
      '1h 0m',
      '23h 59m',
      '1d 1h',
    ]);
  });
});
