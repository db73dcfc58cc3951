// A leaf module, importable from anywhere: the one back-off formula, used by the runner after
// a failed pass (100 ms doubling to a 30 s cap) and by the listener between reconnect attempts
// (100 ms doubling to a 5 s cap). Each caller keeps its own numbers, with why, beside it.

/**
 * The wait before retry number `attempt` (1, 2, …), in ms, unrounded: `baseMs` doubling with
 * each attempt up to `capMs`, drawn at random from the upper half of that, so that processes
 * failing together do not retry in step while each still waits at least half the step.
 */
export function jitteredBackoff(attempt: number, baseMs: number, capMs: number): number {
  const cap = Math.min(capMs, baseMs * 2 ** (attempt - 1));
  return cap / 2 + (Math.random() * cap) / 2;
}
