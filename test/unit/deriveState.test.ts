import { describe, expect, it } from 'vitest';
import { RETRY_CAP_MS } from '../../src/runner/createRunner.js';
import { RETRYING_WITHIN_MS, deriveState, type StateEvidence } from '../../src/status/deriveState.js';

const POLL_WINDOW_MS = 10_000;

/** A projection a daemon set up long ago, caught up, with nobody holding its lock. */
function evidence(overrides: Partial<StateEvidence> = {}): StateEvidence {
  return {
    hasCheckpoint: true,
    blocked: false,
    heldBack: false,
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

  it('is stalled when its next event waits behind an open transaction, with or without a daemon', () => {
    expect(deriveState(evidence({ lagEvents: 3n, heldBack: true }))).toBe('stalled');
    expect(deriveState(evidence({ lagEvents: 3n, heldBack: true, owned: true, sinceUpdateMs: 0 }))).toBe('stalled');
  });

  it('is failed when blocked, whatever else holds', () => {
    expect(deriveState(evidence({ blocked: true }))).toBe('failed');
    expect(deriveState(evidence({ blocked: true, lagEvents: 3n, heldBack: true, owned: true }))).toBe('failed');
  });
});
