import { describe, expect, it } from 'vitest';
import { readsEventType } from '../../src/projection/handlerFor.js';
import { defineProjection } from '../../src/projection/defineProjection.js';
import { canApplyPerEvent, pickForm } from '../../src/runner/apply/pickForm.js';

const noop = async (): Promise<void> => {};
const base = { name: 'p', version: 1 };

describe('pickForm', () => {
  it('takes the fastest form the projection offers: SQL batch, then module batch, then per event', () => {
    expect(pickForm(defineProjection({ ...base, handlers: { a: noop } }))).toBe('perEvent');
    expect(pickForm(defineProjection({ ...base, eventTypes: ['a'], handleBatch: noop }))).toBe('moduleBatch');
    expect(pickForm(defineProjection({ ...base, eventTypes: ['a'], batch: 'select 1' }))).toBe('sqlBatch');
    expect(pickForm(defineProjection({ ...base, handlers: { a: noop }, batch: 'select 1' }))).toBe('sqlBatch');
  });

  it('goes per event when asked, only where the handlers take every type the projection reads', () => {
    const complete = defineProjection({ ...base, eventTypes: ['a.x', 'b.*'], handlers: { 'a.x': noop, 'b.*': noop }, batch: 'select 1' });
    const partial = defineProjection({ ...base, eventTypes: ['a.x', 'b.*'], handlers: { 'a.x': noop }, handleBatch: noop });
    const caughtAll = defineProjection({ ...base, eventTypes: ['a.x', 'b.*', '*'], handlers: { '*': noop }, batch: 'select 1' });
    expect([canApplyPerEvent(complete), canApplyPerEvent(partial), canApplyPerEvent(caughtAll)]).toEqual([true, false, true]);
    expect(pickForm(complete, { perEvent: true })).toBe('perEvent');
    expect(pickForm(partial, { perEvent: true })).toBe('moduleBatch');
  });
});

describe('readsEventType', () => {
  it('matches exact types, prefixes and the catch-all as the store filter does', () => {
    expect(readsEventType(['a.x'], 'a.x')).toBe(true);
    expect(readsEventType(['a.x'], 'a.xy')).toBe(false);
    expect(readsEventType(['a.*'], 'a.b.c')).toBe(true);
    expect(readsEventType(['a.*'], 'a')).toBe(false);
    expect(readsEventType(['*'], 'anything')).toBe(true);
  });
});
