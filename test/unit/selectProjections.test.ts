import { describe, expect, it } from 'vitest';
import { isUserError } from '../../src/errors.js';
import { defineProjection } from '../../src/projection/defineProjection.js';
import { selectProjections } from '../../src/runner/replayProjection.js';

const noop = async (): Promise<void> => {};
const balances = defineProjection({ name: 'balances', version: 1, handlers: { 'account.credited': noop } });
const deposits = defineProjection({ name: 'deposits', version: 2, handlers: { 'account.credited': noop } });

function messageOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(isUserError(error)).toBe(true);
    return (error as Error).message;
  }
  throw new Error('expected a UserError');
}

describe('selectProjections', () => {
  it('keeps the order given and each name once', () => {
    const selected = selectProjections([balances, deposits], ['deposits', 'balances', 'deposits'], './projections');
    expect(selected.map((projection) => projection.name)).toEqual(['deposits', 'balances']);
  });

  it('takes every projection for { all: true }', () => {
    expect(selectProjections([balances, deposits], { all: true }, './projections')).toEqual([balances, deposits]);
  });

  it('names an unknown projection and lists the known ones, in one line', () => {
    expect(messageOf(() => selectProjections([balances, deposits], ['ledger'], './projections'))).toBe(
      "unknown projection 'ledger'; known: balances, deposits",
    );
    expect(messageOf(() => selectProjections([], ['ledger'], './projections'))).toBe(
      "unknown projection 'ledger'; there are none in ./projections",
    );
    expect(messageOf(() => selectProjections([], { all: true }, './projections'))).toBe(
      'no projections to replay in ./projections',
    );
  });
});
