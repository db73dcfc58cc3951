import { UserError } from '../errors.js';
import { describeValue } from '../text.js';

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

const DURATION = /^(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h)$/;

/**
 * Milliseconds in `value`, or `undefined` when it is not a duration: a non-negative number
 * is milliseconds, a string is a number followed by `ms`, `s`, `m` or `h` (`250ms`, `1.5s`).
 * A bare numeric string is refused, since `"500"` could as well mean seconds.
 */
export function durationMs(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const match = DURATION.exec(value);
  if (!match) return undefined;
  const [, amount, unit] = match as unknown as [string, string, keyof typeof UNIT_MS];
  return Number(amount) * UNIT_MS[unit];
}

// Node's timers fire at once for delays above 2^31 - 1 ms; 596h stays below that.
export const MAX_DURATION_MS = 596 * 3_600_000;

/** What a duration setting accepts, ending the sentence "<key> must be …". */
export const DURATION_EXPECTED = 'a duration from 1ms to 596h, such as 250ms, 5s, 2m or 1h';

/**
 * Milliseconds in a duration setting (a config key or a flag): a duration (see
 * {@link durationMs}) from 1 ms to 596 h, or `undefined`. Zero would make a timer spin.
 */
export function settingDurationMs(value: unknown): number | undefined {
  const ms = durationMs(value);
  return ms !== undefined && ms >= 1 && ms <= MAX_DURATION_MS ? ms : undefined;
}

/**
 * Milliseconds in a duration setting, as the config reads it (see {@link settingDurationMs});
 * throws a `UserError` naming `keyPath` (a config key or a flag) and the value otherwise.
 */
export function parseDuration(value: unknown, keyPath: string): number {
  const ms = settingDurationMs(value);
  if (ms === undefined) throw new UserError(`${keyPath} must be ${DURATION_EXPECTED}, got ${describeSetting(value)}`);
  return ms;
}

/** A setting's value as it reads in a one-line error: strings whole, YAML's "mapping" for objects. */
export function describeSetting(value: unknown): string {
  return describeValue(value, { maxLength: Number.POSITIVE_INFINITY, mappings: true });
}
