import { describe, expect, it } from 'vitest';
import { isUserError } from '../../src/errors.js';
import { checkServerVersion } from '../../src/store/connect.js';

const SERVER_URL = 'postgres://projd:secret@db.example:5432/app';

function refusal(versionNum: number, version: string): unknown {
  try {
    checkServerVersion({ versionNum, version }, SERVER_URL);
    return undefined;
  } catch (error) {
    return error;
  }
}

describe('checkServerVersion', () => {
  it.each([
    [130000, '13.0'],
    [130022, '13.22'],
    [170006, '17.6'],
    [180001, '18.1'],
  ])('accepts server_version_num %i (%s)', (versionNum, version) => {
    expect(refusal(versionNum, version)).toBeUndefined();
  });

  it('refuses PostgreSQL 12 with one line naming the server, its version and the minimum', () => {
    const error = refusal(120022, '12.22 (Debian 12.22-1.pgdg120+1)');
    expect(isUserError(error)).toBe(true);
    expect((error as Error).message).toMatchInlineSnapshot(`"database postgres://projd:***@db.example:5432/app runs PostgreSQL 12.22 (Debian 12.22-1.pgdg120+1); projd needs PostgreSQL 13 or newer (for xid8)"`);
  });

  it.each([
    [129999, '12.99'],
    [90624, '9.6.24'],
    [Number.NaN, 'unknown'],
  ])('refuses server_version_num %s', (versionNum, version) => {
    expect(isUserError(refusal(versionNum, version))).toBe(true);
  });
});
