import { describe, expect, it } from 'vitest';
import { selectionChangeMessage, selectionMovedMessage } from '../../src/runner/checkSelections.js';
import { compareSelections, describeSelectionChange, selectionOf, toSelection } from '../../src/store/selection.js';

import { defineProjection } from '../../src/projection/defineProjection.js';

const handlers = (...types: string[]) => Object.fromEntries(types.map((type) => [type, () => {}]));

describe('selection', () => {
  it('is the handler keys, sorted, patterns included', () => {
    expect(selectionOf(defineProjection({ name: 'p', version: 1, handlers: handlers('b.x', 'a.*', 'b.a') }))).toEqual({ types: ['a.*', 'b.a', 'b.x'] });
  });

  it('reads back what was stored, and nothing from a value of no known shape', () => {
    expect(toSelection({ types: ['a'] })).toEqual({ types: ['a'] });
    expect(toSelection({ types: ['a'], partitions: 4 })).toEqual({ types: ['a'] });
    expect(toSelection(null)).toBeNull();
    expect(toSelection({ types: 'a' })).toBeNull();
    expect(toSelection({ types: [1] })).toBeNull();
  });

  it('names the added and removed types, and finds no change when nothing was recorded', () => {
    const recorded = { types: ['account.debited', 'account.opened'] };
    expect(compareSelections(recorded, { types: ['account.debited', 'account.opened'] })).toBeNull();
    expect(compareSelections(null, { types: ['account.opened'] })).toBeNull();
    const change = compareSelections(recorded, { types: ['account.*', 'account.credited', 'account.opened'] });
    expect(change).toEqual({ added: ['account.*', 'account.credited'], removed: ['account.debited'] });
    expect(describeSelectionChange(change!)).toBe('added: account.*, account.credited; removed: account.debited');
  });

  it('says how to get out, at start and in a running daemon', () => {
    expect(selectionChangeMessage('balances', { added: ['account.credited'], removed: [] })).toBe(
      "projection 'balances' handles other event types than its checkpoint was built with (added: account.credited): " +
        'bump its version to rebuild it, or run `projd replay balances`',
    );
    expect(selectionMovedMessage('balances', { added: ['a'], removed: ['b'] })).toBe(
      "projection 'balances': its checkpoint is now built with b, which this daemon does not handle and without a, " +
        'which this daemon handles; this daemon applies nothing to it until restarted with the current projection code',
    );
  });
});
