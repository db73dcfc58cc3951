import { UserError } from '../errors.js';

const MAX_POSITION = 2n ** 63n - 1n;

/**
 * An event's position as a waiter takes it: a bigint, a safe integer or a decimal string,
 * from 1 up. `where` names the flag or parameter in the error.
 */
export function parsePosition(value: unknown, where: string): bigint {
  let position: bigint | undefined;
  if (typeof value === 'bigint') position = value;
  else if (typeof value === 'number' && Number.isSafeInteger(value)) position = BigInt(value);
  else if (typeof value === 'string' && /^\d{1,19}$/.test(value)) position = BigInt(value);
  if (position === undefined || position < 1n || position > MAX_POSITION) {
    throw new UserError(`${where} must be an event's position, an integer from 1, got ${JSON.stringify(typeof value === 'bigint' ? value.toString() : value) ?? String(value)}`);
  }
  return position;
}
