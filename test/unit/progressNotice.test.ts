import { describe, expect, it } from 'vitest';
import { isUserError } from '../../src/errors.js';
import { parseProgressNotice } from '../../src/store/progressNotice.js';
import { parsePosition } from '../../src/wait/parsePosition.js';

describe('parseProgressNotice', () => {
  it('reads the payload a batch sends', () => {
    const payload = '{"projection":"balances","part":2,"parts":4,"era":1,"transactionId":"10234","position":"5812"}';
    expect(parseProgressNotice(payload)).toEqual({
      projection: 'balances',
      part: 2,
      parts: 4,
      checkpoint: { era: 1, transactionId: 10234n, position: 5812n },
    });
  });

  it.each([
    ['not JSON', 'hello'],
    ['no projection', '{"part":0,"parts":1,"era":1,"transactionId":"1","position":"1"}'],
    ['a position that is not digits', '{"projection":"a","part":0,"parts":1,"era":1,"transactionId":"1","position":"1e3"}'],
    ['null', 'null'],
  ])('ignores what anyone else may send on the channel: %s', (_, payload) => {
    expect(parseProgressNotice(payload)).toBeNull();
  });
});

describe('parsePosition', () => {
  it.each([
    [42n, 42n],
    [42, 42n],
    ['9223372036854775807', 9223372036854775807n],
  ])('takes %s', (value, expected) => {
    expect(parsePosition(value, 'position')).toBe(expected);
  });

  it.each([[0], ['0'], [-1], ['abc'], ['1.5'], [1.5], ['9223372036854775808'], [undefined], [null]])('refuses %s with a UserError naming the parameter', (value) => {
    let thrown: unknown;
    try {
      parsePosition(value, 'position');
    } catch (error) {
      thrown = error;
    }
    expect(isUserError(thrown)).toBe(true);
    expect((thrown as Error).message).toMatch(/^position must be an event's position, an integer from 1, got /);
  });
});
