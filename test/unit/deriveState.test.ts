import { describe, expect, it } from 'vitest';
import { RETRY_CAP_MS } from '../../src/runner/createRunner.js';
import { RETRYING_WITHIN_MS, deriveState, type StateEvidence } from '../../src/status/deriveState.js';

const POLL_WINDOW_MS = 10_000;
const STALL_AFTER_MS = 5_000;

/** A projection a daemon set up long ago, caught up, with nobody holding its lock. */
function evidence(overrides: Partial<StateEvidence> = {}): StateEvidence {
  return {
    hasCheckpoint: true,
    rebuildPending: false,
    blocked: false,
    heldBack: false,
    heldBackMs: 0,
    stallAfterMs: STALL_AFTER_MS,
    lagEvents: 0n,
    owned: false,
    sinceUpdateMs: 60 * 60_000,
    activeWithinMs: POLL_WINDOW_MS,
    sinceErrorMs: null,
    ...overrides,
  };
}

describe('deriveState', () => {
  it('is live when nothing of its types waits, whether or not a daemon runs', () => {
    expect(deriveState(evidence())).toBe('live');
    expect(deriveState(evidence({ owned: true, sinceUpdateMs: 0 }))).toBe('live');
  });

  it('is catching_up when events wait and a daemon holds its lock or just moved its checkpoint', () => {
    expect(deriveState(evidence({ lagEvents: 500n, owned: true }))).toBe('catching_up');
    expect(deriveState(evidence({ lagEvents: 500n, sinceUpdateMs: 50 }))).toBe('catching_up');
    expect(deriveState(evidence({ lagEvents: 500n, sinceUpdateMs: POLL_WINDOW_MS }))).toBe('catching_up');
  });

  it('is catching_up while a daemon retries a failing pass, however long its checkpoint has not moved', () => {
    expect(deriveState(evidence({ lagEvents: 500n, sinceErrorMs: 0 }))).toBe('catching_up');
    expect(deriveState(evidence({ lagEvents: 500n, sinceErrorMs: RETRYING_WITHIN_MS }))).toBe('catching_up');
    // The runner records each failed pass and waits at most RETRY_CAP_MS before the next.
    expect(RETRYING_WITHIN_MS).toBeGreaterThan(RETRY_CAP_MS);
    // A daemon that stopped while failing leaves its error behind, and a stopped projection.
    expect(deriveState(evidence({ lagEvents: 500n, sinceErrorMs: RETRYING_WITHIN_MS + 1 }))).toBe('stopped');
  });

  it('is stopped when events wait and nothing applies them', () => {
    expect(deriveState(evidence({ lagEvents: 1n }))).toBe('stopped');
    expect(deriveState(evidence({ lagEvents: 1n, sinceUpdateMs: POLL_WINDOW_MS + 1 }))).toBe('stopped');
  });

  it('is stopped before any daemon set it up, unless one is doing so now', () => {
    const unset = { hasCheckpoint: false, sinceUpdateMs: null };
    expect(deriveState(evidence({ ...unset }))).toBe('stopped');
    expect(deriveState(evidence({ ...unset, lagEvents: 10n }))).toBe('stopped');
    expect(deriveState(evidence({ ...unset, lagEvents: 10n, heldBack: true }))).toBe('stopped');
    expect(deriveState(evidence({ ...unset, lagEvents: 10n, owned: true }))).toBe('catching_up');
  });

  it('is stalled when its next event has waited past stallAfter behind an open transaction, with or without a daemon', () => {
    const stuck = { lagEvents: 3n, heldBack: true, heldBackMs: STALL_AFTER_MS + 1 };
    expect(deriveState(evidence(stuck))).toBe('stalled');
    expect(deriveState(evidence({ ...stuck, owned: true, sinceUpdateMs: 0 }))).toBe('stalled');
  });

  it('is what it would be otherwise while its next event has waited no longer than stallAfter: a commit in flight', () => {
    const inFlight = { lagEvents: 3n, heldBack: true, heldBackMs: STALL_AFTER_MS };
    expect(deriveState(evidence({ ...inFlight, sinceUpdateMs: 50 }))).toBe('catching_up');
    expect(deriveState(evidence({ ...inFlight, owned: true }))).toBe('catching_up');
    expect(deriveState(evidence(inFlight))).toBe('stopped');
  });

  it('is stopped while a version bump waits for a daemon to rebuild it, catching_up while one does', () => {
    const pending = { rebuildPending: true, lagEvents: 40n };
    expect(deriveState(evidence(pending))).toBe('stopped');
    // The old version's daemon moving the old checkpoint is not the new version at work, nor is its block.
    expect(deriveState(evidence({ ...pending, sinceUpdateMs: 0, blocked: true }))).toBe('stopped');
    expect(deriveState(evidence({ ...pending, heldBack: true, heldBackMs: STALL_AFTER_MS + 1 }))).toBe('stopped');
    expect(deriveState(evidence({ ...pending, owned: true }))).toBe('catching_up');
  });

  it('is failed when blocked, whatever else holds', () => {
    expect(deriveState(evidence({ blocked: true }))).toBe('failed');
    expect(deriveState(evidence({ blocked: true, lagEvents: 3n, heldBack: true, owned: true }))).toBe('failed');
  });
});
