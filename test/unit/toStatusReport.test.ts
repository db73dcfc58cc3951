import { describe, expect, it } from 'vitest';
import { toStatusReport } from '../../src/status/readStatusReport.js';
import type { CheckpointState, OpenTransaction, Progress, ProjectionProgress } from '../../src/store/progress.js';

const READ_AT = Date.parse('2025-01-01T12:00:00.000Z');
const STALL_AFTER_MS = 5000;
const options = { pollInterval: 5000, stallAfter: STALL_AFTER_MS };

const balances = { name: 'balances', version: 1, eventTypes: ['account.credited'] };

const secondsAgo = (seconds: number) => new Date(READ_AT - seconds * 1000);

function checkpoint(overrides: Partial<CheckpointState> = {}): CheckpointState {
  return {
    version: 1,
    parts: 1,
    era: 0,
    transactionId: 10n,
    position: 10n,
    updatedAt: secondsAgo(60),
    blockedBy: null,
    lastError: null,
    lastErrorAt: null,
    selection: { types: ['account.credited'] },
    ...overrides,
  };
}

/** `balances`, its next event held back since `eventAge` seconds, by a transaction open `blockerAge` seconds. */
function heldBack(eventAge: number, blocker: Partial<OpenTransaction> & { age: number } | null): Progress {
  const part = {
    checkpoint: checkpoint(),
    oldestUnapplied: { era: 0, transactionId: 12n, position: 11n, createdAt: secondsAgo(eventAge), heldBack: true },
    lagEvents: 1n,
    lagSeconds: eventAge,
    owner: null,
  };
  const projection: ProjectionProgress = { name: 'balances', ...part, parkedEvents: 0, parts: [{ part: 0, ...part }] };
  const heldBackBy: OpenTransaction | null = blocker && {
    pid: 42,
    database: 'shop',
    user: 'app',
    applicationName: null,
    state: 'idle in transaction',
    transactionStartedAt: secondsAgo(blocker.age),
    queryStartedAt: null,
    query: null,
    ...blocker,
  };
  return { readAt: new Date(READ_AT), headPosition: 11n, heldBack: true, heldBackBy, projections: [projection] };
}

const stateOf = (progress: Progress) => toStatusReport(progress, [balances], options).projections[0]!;

describe('toStatusReport', () => {
  it('counts a held-back event as stalled only once both bounds on its wait pass stallAfter', () => {
    // Its own transaction started long ago, but the one holding it back only just: it committed just now.
    expect(stateOf(heldBack(60, { age: 1 })).state).toBe('stopped');
    // Held back by an old transaction, but it committed just now.
    expect(stateOf(heldBack(1, { age: 60 })).state).toBe('stopped');
    const stalled = stateOf(heldBack(6, { age: 60 }));
    expect(stalled.state).toBe('stalled');
    expect(stalled.stalledBy).toMatchObject({ pid: 42, transactionAgeSeconds: 60 });
  });

  it('goes by the event alone when the blocker is a prepared transaction, or cannot be seen', () => {
    // A prepared transaction's time is its PREPARE, which may come after the event's commit: no bound.
    expect(stateOf(heldBack(6, { age: 1, pid: null, state: 'prepared' })).state).toBe('stalled');
    expect(stateOf(heldBack(6, null)).state).toBe('stalled');
    expect(stateOf(heldBack(4, null)).state).toBe('stopped');
  });

  it('flags a pending rebuild, a newer stored version, and handlers changed without a version bump', () => {
    const progress = (stored: Partial<CheckpointState>): Progress => ({
      ...heldBack(0, null),
      heldBack: false,
      projections: [{ ...heldBack(0, null).projections[0]!, checkpoint: checkpoint(stored), oldestUnapplied: null, lagEvents: 0n }],
    });
    expect(stateOf(progress({}))).toMatchObject({ state: 'live', rebuildPending: false, problem: null });
    expect(stateOf(progress({ version: 0 }))).toMatchObject({ state: 'stopped', rebuildPending: true, problem: null });
    expect(stateOf(progress({ version: 2 }))).toMatchObject({
      storedVersion: 2,
      rebuildPending: false,
      problem: expect.stringMatching(/^version 1 loaded, but the store holds version 2, written by newer code/),
    });
    expect(stateOf(progress({ selection: { types: ['account.credited', 'account.debited'] } }))).toMatchObject({
      problem: expect.stringContaining('(removed: account.debited)'),
    });
    // Not recorded yet (written before projd recorded it): no complaint.
    expect(stateOf(progress({ selection: null }))).toMatchObject({ problem: null });
  });

  it('reports a blue/green build under its projection: the older version serving, the build beside it', () => {
    const serving = { ...heldBack(0, null).projections[0]!, checkpoint: checkpoint(), oldestUnapplied: null, lagEvents: 0n, lagSeconds: 0 };
    const build: ProjectionProgress = {
      name: 'balances:build',
      checkpoint: checkpoint({ version: 2, position: 4n, updatedAt: secondsAgo(1) }),
      oldestUnapplied: { era: 0, transactionId: 11n, position: 5n, createdAt: secondsAgo(30), heldBack: false },
      lagEvents: 7n,
      lagSeconds: 30,
      owner: { pid: 812, applicationName: 'projd daemon web-1:812' },
      parkedEvents: 1,
      parts: [],
    };
    const progress: Progress = { ...heldBack(0, null), heldBack: false, projections: [serving, build] };
    const loaded = [{ ...balances, version: 2 }, { ...balances, name: 'balances:build', version: 2 }];
    const [report, ...others] = toStatusReport(progress, loaded, options).projections;

    expect(others).toEqual([]); // the build is no projection of its own
    // Version 1 serves, live: not `stopped` as for a rebuild that would throw it away; the rebuild is still pending.
    expect(report).toMatchObject({ name: 'balances', version: 2, storedVersion: 1, rebuildPending: true, state: 'live', problem: null });
    expect(report!.build).toEqual({
      version: 2,
      state: 'catching_up',
      position: '4',
      lagEvents: '7',
      lagSeconds: 30,
      failedEvents: 1,
      updatedAt: secondsAgo(1).toISOString(),
      owner: { pid: 812, applicationName: 'projd daemon web-1:812' },
      blockedBy: null,
      lastError: null,
      lastErrorAt: null,
      schema: 'projd_build_balances',
    });

    // Without a build, the same checkpoint is a rebuild pending, which no daemon runs.
    const [pending] = toStatusReport({ ...progress, projections: [serving] }, [loaded[0]!], options).projections;
    expect(pending).toMatchObject({ state: 'stopped', rebuildPending: true, build: null });
  });
});
