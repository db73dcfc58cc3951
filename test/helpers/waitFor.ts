import { inspect } from 'node:util';

export interface WaitForOptions {
  /** @defaultValue 10000 */
  timeoutMs?: number;
  /** Pause between attempts. @defaultValue 50 */
  intervalMs?: number;
  /** What is awaited, for the failure message: "projection 'balances' to reach position 3". */
  message?: string;
}

type Truthy<T> = Exclude<T, false | 0 | 0n | '' | null | undefined>;

/**
 * Polls `condition` until it returns a truthy value, and returns that value. A throw counts as
 * "not yet". At the deadline it fails with `message`, the last value and the last error. Tests
 * wait only through this, never with a bare sleep.
 */
export async function waitFor<T>(condition: () => T | Promise<T>, options: WaitForOptions = {}): Promise<Truthy<T>> {
  const { timeoutMs = 10_000, intervalMs = 50, message = 'condition' } = options;
  const started = Date.now();
  const deadline = started + timeoutMs;
  let attempts = 0;
  let lastValue: unknown = undefined;
  let lastError: unknown = undefined;
  let sawValue = false;

  for (;;) {
    attempts++;
    const remaining = deadline - Date.now();
    try {
      // One attempt that never settles must not outlive the deadline.
      const outcome = await withDeadline(Promise.resolve().then(condition), Math.max(remaining, 1));
      if (outcome.settled) {
        lastValue = outcome.value;
        lastError = undefined;
        sawValue = true;
        if (outcome.value) return outcome.value as Truthy<T>;
      }
    } catch (error) {
      lastError = error;
    }
    if (Date.now() + intervalMs > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }

  const details = [
    sawValue ? `last value: ${inspect(lastValue, { depth: 4, breakLength: Infinity })}` : 'no attempt returned',
    lastError === undefined ? undefined : `last error: ${lastError instanceof Error ? lastError.message : inspect(lastError)}`,
  ].filter(Boolean);
  throw new Error(
    `waitFor: ${message} not met within ${timeoutMs} ms (${attempts} attempts); ${details.join('; ')}`,
    lastError === undefined ? undefined : { cause: lastError },
  );
}

async function withDeadline<T>(promise: Promise<T>, ms: number): Promise<{ settled: true; value: T } | { settled: false }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<{ settled: false }>((resolve) => {
    timer = setTimeout(() => resolve({ settled: false }), ms);
  });
  try {
    return await Promise.race([promise.then((value) => ({ settled: true as const, value })), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
