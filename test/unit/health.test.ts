import { describe, expect, it } from 'vitest';
import { findNotCaughtUp, findStuckLoops, findVersionBehind } from '../../src/http/health.js';
import type { RunnerSnapshot } from '../../src/runner/createRunner.js';
import { runnerSnapshot } from '../helpers/fixtures.js';

const NOW = 1_000_000_000;
const options = { now: NOW, stuckAfter: 120_000, pollInterval: 5_000 };

function snapshot(overrides: Partial<RunnerSnapshot> = {}): RunnerSnapshot {
  return runnerSnapshot(NOW, overrides);
}

describe('findStuckLoops', () => {
  it('passes loops that move, and a batch younger than stuckAfter', () => {
    expect(
      findStuckLoops(
        [
          snapshot({}),
          snapshot({ name: 'a', inBatch: true, lastPassAt: NOW - 120_000 }),
          // Waiting out its poll interval or a retry backoff is not stuck.
          snapshot({ name: 'b', lastPassAt: NOW - 120_000 - 30_000 }),
        ],
        options,
      ),
    ).toEqual([]);
  });

  it('names a batch that has run longer than stuckAfter', () => {
    expect(findStuckLoops([snapshot({ inBatch: true, lastPassAt: NOW - 120_001 })], options)).toEqual([
      'balances: batch running for 120s',
    ]);
  });

  it('names a loop that has not come back from its longest wait plus stuckAfter', () => {
    expect(findStuckLoops([snapshot({ lastPassAt: NOW - 150_001 })], options)).toEqual(['balances: no pass for 150s']);
    // A poll interval longer than the retry cap is waited out in full.
    expect(findStuckLoops([snapshot({ lastPassAt: NOW - 150_001 })], { ...options, pollInterval: 60_000 })).toEqual([]);
  });

  it('names a loop that has ended', () => {
    expect(findStuckLoops([snapshot({ state: 'stopped' })], options)).toEqual(['balances: loop ended']);
  });
});

describe('findNotCaughtUp', () => {
  it('lists the projections that have not caught up once', () => {
    expect(
      findNotCaughtUp([
        snapshot({ name: 'a', caughtUpOnce: false, state: 'catching_up' }),
        snapshot({ name: 'b' }),
        snapshot({ name: 'c', caughtUpOnce: false, state: 'stalled' }),
      ]),
    ).toEqual(['a', 'c']);
  });

  it('names the part of a split projection that has not caught up once', () => {
    expect(
      findNotCaughtUp([
        snapshot({ name: 'a', part: { index: 0, count: 2 } }),
        snapshot({ name: 'a', part: { index: 1, count: 2 }, caughtUpOnce: false, state: 'catching_up' }),
      ]),
    ).toEqual(['a part 1/2']);
  });
});

describe('findVersionBehind', () => {
  it('lists the projections whose store holds a newer version, caught up before or not', () => {
    const snapshots = [
      snapshot({ name: 'a', state: 'version_ahead', version: 1 }),
      snapshot({ name: 'b' }),
      snapshot({ name: 'c', caughtUpOnce: false, state: 'version_ahead', version: 3 }),
    ];
    expect(findVersionBehind(snapshots)).toEqual(['a (version 1)', 'c (version 3)']);
    // Not also "not caught up yet": it will not catch up with this code.
    expect(findNotCaughtUp(snapshots)).toEqual([]);
  });
});
