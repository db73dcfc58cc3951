import { describe, expect, it } from 'vitest';
import { checkProblems, getExitCode } from '../../src/cli/status.js';
import type { ProjectionStatus } from '../../src/status/readStatusReport.js';
import { projectionStatus } from '../helpers/fixtures.js';

const FIVE_MINUTES_MS = 300_000;

function status(overrides: Partial<ProjectionStatus> = {}): ProjectionStatus {
  return projectionStatus(overrides);
}

describe('status --check', () => {
  const check = { maxLagMs: FIVE_MINUTES_MS };

  it('exits 0 when every projection is live, catching up or stopped within health.maxLag', () => {
    const statuses = [
      status(),
      status({ name: 'a', state: 'catching_up', lagEvents: '5000', lagSeconds: 299 }),
      status({ name: 'b', state: 'stopped', lagEvents: '1', lagSeconds: 300 }),
      status({ name: 'c', state: 'stopped', storedVersion: null, lagEvents: '0' }),
    ];
    expect(checkProblems(statuses, check)).toEqual([]);
    expect(getExitCode(statuses, check)).toBe(0);
    expect(getExitCode([], check)).toBe(0);
  });

  it('exits 1 for a failed projection', () => {
    const statuses = [status(), status({ name: 'deposits', state: 'failed', blockedBy: '7', failedEvents: 1 })];
    expect(checkProblems(statuses, check)).toEqual(["projection 'deposits' is failed: stopped at failed event 7"]);
    expect(getExitCode(statuses, check)).toBe(1);
  });

  it('exits 1 for a stalled projection, naming the transaction', () => {
    const stalledBy = {
      pid: 4242,
      database: 'shop',
      user: 'app',
      applicationName: 'billing',
      state: 'idle in transaction',
      transactionStartedAt: '2025-01-01T00:00:00.000Z',
      transactionAgeSeconds: 95,
      queryStartedAt: '2025-01-01T00:00:00.000Z',
      query: 'update accounts set …',
    };
    const statuses = [status({ state: 'stalled', lagEvents: '3', lagSeconds: 2, stalledBy })];
    expect(checkProblems(statuses, check)).toEqual([
      "projection 'balances' is stalled: held back by pid 4242 (idle in transaction, open 1m 35s, billing, database shop): update accounts set …",
    ]);
    expect(getExitCode(statuses, check)).toBe(1);
  });

  it('exits 1 when a projection lags more than health.maxLag, in any state', () => {
    for (const state of ['catching_up', 'stopped'] as const) {
      const statuses = [status({ state, lagEvents: '12', lagSeconds: 300.5 })];
      expect(checkProblems(statuses, check)).toEqual([
        "projection 'balances' lags 5m 0s, more than health.maxLag (5m 0s)",
      ]);
      expect(getExitCode(statuses, check)).toBe(1);
    }
  });

  it('exits 1 for a projection with a problem, whatever its state, and not for a pending rebuild', () => {
    const problem = 'version 1 loaded, but the store holds version 2, written by newer code: …';
    const statuses = [status({ name: 'a', storedVersion: 2, problem }), status({ name: 'b', version: 2, rebuildPending: true })];
    expect(checkProblems(statuses, check)).toEqual([`projection 'a': ${problem}`]);
    expect(getExitCode(statuses, check)).toBe(1);
    expect(getExitCode([statuses[1]!], check)).toBe(0);
  });
});
