import type { RunnerSnapshot } from '../../src/runner/createRunner.js';
import type { ProjectionStatus } from '../../src/status/readStatusReport.js';

/** A live, caught-up runner of `balances` whose last pass was at `lastPassAt`, with `overrides`. */
export function runnerSnapshot(lastPassAt: number, overrides: Partial<RunnerSnapshot> = {}): RunnerSnapshot {
  return {
    name: 'balances',
    version: 1,
    state: 'live',
    position: null,
    caughtUpOnce: true,
    lastPassAt,
    inBatch: false,
    lastError: null,
    ...overrides,
  };
}

/** A live `balances` row of `projd status` at position 100, with `overrides`. */
export function projectionStatus(overrides: Partial<ProjectionStatus> = {}): ProjectionStatus {
  return {
    name: 'balances',
    version: 1,
    storedVersion: 1,
    rebuildPending: false,
    problem: null,
    state: 'live',
    position: '100',
    headPosition: '100',
    lagEvents: '0',
    lagSeconds: 0,
    failedEvents: 0,
    updatedAt: '2025-01-01T00:00:00.000Z',
    owner: null,
    blockedBy: null,
    lastError: null,
    lastErrorAt: null,
    stalledBy: null,
    build: null,
    ...overrides,
  };
}
