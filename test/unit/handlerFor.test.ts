import { describe, expect, it } from 'vitest';
import { defineProjection } from '../../src/projection/defineProjection.js';
import { handlerFor } from '../../src/projection/handlerFor.js';
import type { EventHandler } from '../../src/projection/types.js';

/** A handler that is recognisable by name in assertions. */
function named(name: string): EventHandler {
  return Object.defineProperty(async () => {}, 'name', { value: name });
}

const projection = defineProjection({
  name: 'routing',
  version: 1,
  handlers: {
    '*': named('all'),
    'account.*': named('account'),
    'account.credit.*': named('account.credit'),
    'account.credited': named('exact'),
    'lit%_\\.*': named('metacharacters'),
  },
});

describe('handlerFor', () => {
  it.each([
    ['account.credited', 'exact'], // the exact type first, though two prefixes match too
    ['account.credit.reversed', 'account.credit'], // then the longest matching prefix
    ['account.opened', 'account'],
    ['account.', 'account'], // a prefix includes its dot, and nothing needs to follow it
    ['account', 'all'], // `account.*` does not match `account` itself
    ['accounts.opened', 'all'],
    ['order.placed', 'all'], // then the catch-all
    ['lit%_\\.x', 'metacharacters'], // pattern characters of LIKE are plain characters here
    ['litXY\\.x', 'all'],
  ])('%s goes to the %s handler', (type, handler) => {
    expect(handlerFor(projection, type)?.name).toBe(handler);
  });

  it('finds no handler for a type nothing matches, without a catch-all', () => {
    const exactOnly = defineProjection({ name: 'exact_only', version: 1, handlers: { 'a.b': named('ab'), 'c.*': named('c') } });
    expect(handlerFor(exactOnly, 'a.b')?.name).toBe('ab');
    expect(handlerFor(exactOnly, 'c.d')?.name).toBe('c');
    expect(handlerFor(exactOnly, 'a.c')).toBeUndefined();
    expect(handlerFor(exactOnly, 'c')).toBeUndefined();
  });
});
