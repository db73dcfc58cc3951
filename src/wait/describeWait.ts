import type { ProjectionBehind, WaitOutcome } from './progressWaiters.js';

/** `balances (at 1/742/17), deposits (no checkpoint yet)`: who is behind, for messages. */
export function behindText(behind: readonly ProjectionBehind[]): string {
  return behind
    .map(({ projection, part, checkpoint }) => {
      const name = part > 0 ? `${projection} part ${part}` : projection;
      const at = checkpoint ? `at ${checkpoint.era}/${checkpoint.transactionId}/${checkpoint.position}` : 'no checkpoint yet';
      return `${name} (${at})`;
    })
    .join(', ');
}

/** The one line a timed-out wait reports. */
export function timedOutText(outcome: Extract<WaitOutcome, { kind: 'timed_out' }>, timeoutMs: number): string {
  const seconds = `${timeoutMs / 1000}s`;
  const event = outcome.visible ? '' : ` (the event at position ${outcome.position} was not committed yet)`;
  return `timed out after ${seconds} waiting for position ${outcome.position}${event}: still behind: ${behindText(outcome.behind)}`;
}
