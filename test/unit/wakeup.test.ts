import { describe, expect, it } from 'vitest';
import { createWakeup, delay } from '../../src/runner/wakeup.js';

const HOUR = 3_600_000;

describe('createWakeup', () => {
  it('ends a wait at once when woken', async () => {
    const wakeup = createWakeup();
    const waiting = wakeup.wait(HOUR);
    wakeup.wake();
    await waiting; // would time the test out if the wake-up were lost
  });

  it('keeps a wake-up that arrives while nobody waits, for exactly one wait', async () => {
    const wakeup = createWakeup();
    wakeup.wake();
    wakeup.wake(); // coalesces with the first
    await wakeup.wait(HOUR);
    const second = await Promise.race([wakeup.wait(HOUR).then(() => 'woken'), Promise.resolve('still waiting')]);
    expect(second).toBe('still waiting');
    wakeup.wake();
  });

  it('forgets a pending wake-up on clear()', async () => {
    const wakeup = createWakeup();
    wakeup.wake();
    wakeup.clear();
    const result = await Promise.race([wakeup.wait(HOUR).then(() => 'woken'), Promise.resolve('still waiting')]);
    expect(result).toBe('still waiting');
    wakeup.wake();
  });

  it('times out by itself', async () => {
    await createWakeup().wait(1);
  });
});

describe('delay', () => {
  it('ends early when the signal aborts, and at once when already aborted', async () => {
    const controller = new AbortController();
    const waiting = delay(HOUR, controller.signal);
    controller.abort();
    await waiting;
    await delay(HOUR, controller.signal);
  });
});
