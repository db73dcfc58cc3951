import { describe, expect, it } from 'vitest';
import { formatElapsed, formatEta, formatProgressLine, formatReplayed } from '../../src/cli/replay.js';
import type { ReplayProgress } from '../../src/operations/replayProjections.js';

function progress(overrides: Partial<ReplayProgress> = {}): ReplayProgress {
  return {
    projection: 'balances',
    done: 120_000,
    total: 200_000,
    elapsedMs: 2_490,
    rate: 48_192.7,
    etaSeconds: 1.66,
    finished: false,
    ...overrides,
  };
}

describe('projd replay output', () => {
  it('renders the progress line: counts, percent, rate to three digits, ETA rounded up', () => {
    expect(formatProgressLine(progress())).toBe('balances  120,000 / 200,000 events  60%  48,200 ev/s  ETA 2s');
  });

  it('shows an unknown ETA and an empty store plainly', () => {
    expect(formatProgressLine(progress({ done: 0, total: 0, rate: 0, etaSeconds: null }))).toBe(
      'balances  0 / 0 events  100%  0 ev/s  ETA ?',
    );
  });

  it('renders the final line, in words: one event, many events', () => {
    expect(formatReplayed(progress({ done: 200_000, elapsedMs: 4_106, rate: 48_709 }))).toBe(
      'replayed balances: 200,000 events in 4.1s (48,700 events/s)',
    );
    expect(formatReplayed(progress({ done: 1, elapsedMs: 250, rate: 4 }))).toBe(
      'replayed balances: 1 event in 0.3s (4 events/s)',
    );
    expect(formatReplayed(progress({ done: 0, elapsedMs: 50, rate: 0 }))).toBe(
      'replayed balances: 0 events in 0.1s (0 events/s)',
    );
  });

  it('writes durations in seconds, then minutes, then hours', () => {
    expect(formatElapsed(4_106)).toBe('4.1s');
    expect(formatElapsed(59_990)).toBe('1m 00s');
    expect(formatElapsed(125_000)).toBe('2m 05s');
    expect(formatElapsed(3_720_000)).toBe('1h 02m');
    expect(formatEta(0)).toBe('0s');
    expect(formatEta(59.2)).toBe('1m 00s');
    expect(formatEta(7_380)).toBe('2h 03m');
    expect(formatEta(Number.POSITIVE_INFINITY)).toBe('?');
  });
});
