import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { createWakeup, delay } from '../../src/runner/wakeup.js';

const HOUR = 3_600_000;
/** Long enough for anything already due (a resolved promise, a 0 ms timer) to have run, even under load. */
const OBSERVE_MS = 50;
/** What "at once" may take on a loaded machine; a wait that was not ended would take an hour. */
const PROMPTLY_MS = 2_000;

/**
 * Whether `promise` settles within `ms` of real time. The window is a real timer, so a wait
 * that ended early (at once, or on any timer shorter than its own) is seen as settled.
 */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const timeout = new AbortController();
  try {
    return await Promise.race([
      promise.then(() => true),
      sleep(ms, false, { signal: timeout.signal }),
    ]);
  } finally {
    timeout.abort(); // the timer must not keep the run waiting
  }
}

// Every wait a test starts is ended before it returns, so no hour-long timer is left behind.
describe('createWakeup', () => {
  it('ends a wait at once when woken', async () => {
    const wakeup = createWakeup();
    const waiting = wakeup.wait(HOUR);
    expect(await settlesWithin(waiting, OBSERVE_MS)).toBe(false);
    wakeup.wake();
    expect(await settlesWithin(waiting, PROMPTLY_MS)).toBe(true);
  });

  it('keeps a wake-up that arrives while nobody waits, for exactly one wait', async () => {
    const wakeup = createWakeup();
    wakeup.wake();
    wakeup.wake(); // coalesces with the first
    expect(await settlesWithin(wakeup.wait(HOUR), PROMPTLY_MS)).toBe(true);
    const second = wakeup.wait(HOUR);
    expect(await settlesWithin(second, OBSERVE_MS)).toBe(false);
    wakeup.wake();
    expect(await settlesWithin(second, PROMPTLY_MS)).toBe(true);
  });

  it('does not keep a wake-up that ended a wait for the next one', async () => {
    const wakeup = createWakeup();
    const first = wakeup.wait(HOUR);
    wakeup.wake();
    expect(await settlesWithin(first, PROMPTLY_MS)).toBe(true);
    const second = wakeup.wait(HOUR);
    expect(await settlesWithin(second, OBSERVE_MS)).toBe(false);
    wakeup.wake();
    expect(await settlesWithin(second, PROMPTLY_MS)).toBe(true);
  });

  it('forgets a pending wake-up on clear()', async () => {
    const wakeup = createWakeup();
    wakeup.wake();
    wakeup.clear();
    const waiting = wakeup.wait(HOUR);
    expect(await settlesWithin(waiting, OBSERVE_MS)).toBe(false);
    wakeup.wake();
    expect(await settlesWithin(waiting, PROMPTLY_MS)).toBe(true);
  });

  it('times out by itself, not before its time', async () => {
    const waiting = createWakeup().wait(4 * OBSERVE_MS);
    expect(await settlesWithin(waiting, OBSERVE_MS)).toBe(false); // a timer never fires before its time
    expect(await settlesWithin(waiting, PROMPTLY_MS)).toBe(true);
  });
});

describe('delay', () => {
  it('ends early when the signal aborts, and at once when already aborted', async () => {
    const controller = new AbortController();
    const waiting = delay(HOUR, controller.signal);
    expect(await settlesWithin(waiting, OBSERVE_MS)).toBe(false);
    controller.abort();
    expect(await settlesWithin(waiting, PROMPTLY_MS)).toBe(true);
    expect(await settlesWithin(delay(HOUR, controller.signal), PROMPTLY_MS)).toBe(true);
  });
});
