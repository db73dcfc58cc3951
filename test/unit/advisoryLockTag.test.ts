import { describe, expect, it } from 'vitest';
import { advisoryLockTag } from '../../src/store/progress.js';

// pg_locks shows a bigint advisory key as two unsigned 32-bit halves; the integration tests
// check the same split against a lock taken on a real server.
describe('advisoryLockTag', () => {
  it('splits a key into the classid (high) and objid (low) halves', () => {
    expect(advisoryLockTag('1')).toEqual({ classid: 0, objid: 1 });
    expect(advisoryLockTag(String(2n ** 32n + 5n))).toEqual({ classid: 1, objid: 5 });
    expect(advisoryLockTag('-1')).toEqual({ classid: 4_294_967_295, objid: 4_294_967_295 });
    expect(advisoryLockTag(String(-(2n ** 63n)))).toEqual({ classid: 2 ** 31, objid: 0 });
  });
});
