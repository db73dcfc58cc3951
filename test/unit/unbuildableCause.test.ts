import { describe, expect, it } from 'vitest';
import { isUserError, UserError } from '../../src/errors.js';
import { SchemaNamedError, unbuildableCause } from '../../src/runner/scratchBuild.js';

/** An error as pg gives it: the server's message and SQLSTATE. */
function databaseError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

describe('unbuildableCause', () => {
  it('takes a name its build schema does not have for a projection that reads outside it', () => {
    for (const [message, code] of [
      ['relation "customers" does not exist', '42P01'],
      ['function label_of(text) does not exist', '42883'],
      ['type "tier" does not exist', '42704'],
    ] as const) {
      const cause = unbuildableCause('balances', databaseError(message, code));
      expect(isUserError(cause)).toBe(true);
      expect(cause!.message).toBe(
        `projection 'balances': ${message} in its build schema; ` +
          'a projection that reads tables, functions or types other than its own cannot be built beside the live tables',
      );
    }
  });

  it('passes a statement naming a schema on as it is, and leaves any other failure to the runner', () => {
    const refused = new SchemaNamedError("projection 'balances': a handler names schema 'public' (public.balances)");
    expect(unbuildableCause('balances', refused)).toBe(refused);
    // Another refusal (handlers changed under a running daemon) is not the build's to judge.
    expect(unbuildableCause('balances', new UserError("projection 'balances': its checkpoint is now built with …"))).toBeNull();
    expect(unbuildableCause('balances', databaseError('division by zero', '22012'))).toBeNull();
    expect(unbuildableCause('balances', databaseError('deadlock detected', '40P01'))).toBeNull();
    expect(unbuildableCause('balances', new Error('handler threw'))).toBeNull();
    expect(unbuildableCause('balances', undefined)).toBeNull();
  });
});
