import { BatchTimeoutError } from './batchErrors.js';

export interface Deadline {
  readonly expired: boolean;
  /** Settles with `work`, or rejects once the deadline passes, whichever comes first. */
  race<T>(work: Promise<T> | T): Promise<T>;
  clear(): void;
}

export function createDeadline(timeoutMs: number, onExpire: () => void): Deadline {
  let expired = false;
  let rejectExpired!: (error: Error) => void;
  const whenExpired = new Promise<never>((_, reject) => (rejectExpired = reject));
  whenExpired.catch(() => undefined); // observed through race(); never unhandled
  const timer = setTimeout(() => {
    expired = true;
    onExpire();
    rejectExpired(new BatchTimeoutError(timeoutMs));
  }, timeoutMs);
  return {
    get expired() {
      return expired;
    },
    race: (work) => Promise.race([work, whenExpired]),
    clear: () => clearTimeout(timer),
  };
}
