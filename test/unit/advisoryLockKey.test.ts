import { describe, expect, it } from 'vitest';
import { advisoryLockKey } from '../../src/store/names.js';

// Golden values: every daemon, of any projd version and on any server, must derive the same
// key for a projection, or two daemons would run it at once. Changing these breaks that.
describe('advisoryLockKey', () => {
  it('derives the pinned 64-bit keys', () => {
    expect(advisoryLockKey('projection', 'balances')).toBe('-2203829966819236279');
    expect(advisoryLockKey('projection', 'deposits')).toBe('-2063034913049468460');
    expect(advisoryLockKey('migrate', 'projd')).toBe('-2892473430200024852');
  });

  it('fits a signed bigint and differs by scope', () => {
    const key = BigInt(advisoryLockKey('projection', 'x'));
    expect(key >= -(2n ** 63n) && key < 2n ** 63n).toBe(true);
    expect(advisoryLockKey('projection', 'projd')).not.toBe(advisoryLockKey('migrate', 'projd'));
  });
});
