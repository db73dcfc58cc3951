import { silentLogger } from '../../src/log.js';
import { describe, expect, it } from 'vitest';
import { defineProjection } from '../../src/projection/defineProjection.js';
import { BatchFailure } from '../../src/runner/batchErrors.js';
import { createIsolation, type PassPlan } from '../../src/runner/isolation.js';
import type { BatchResult } from '../../src/runner/runBatch.js';
import { START } from '../../src/store/position.js';

// Isolation of a batch handler's failure, pass by pass, against a simulated store: events at
// positions 1…n, one of them poison. A pass of `batchSize` events fails when it holds it.
const noop = async (): Promise<void> => {};
const batchOnly = defineProjection({ name: 'p', version: 1, eventTypes: ['t'], batch: 'select 1' });
const withHandlers = defineProjection({ name: 'p', version: 1, batch: 'select 1', handlers: { t: noop } });
const divisionByZero = Object.assign(new Error('division by zero'), { code: '22012' });

function done(applied: number, extra: Partial<Extract<BatchResult, { kind: 'done' }>> = {}): Extract<BatchResult, { kind: 'done' }> {
  return { kind: 'done', form: 'sqlBatch', applied, to: START, checkpoint: START, full: false, heldBack: false, ...extra };
}

/** Runs passes until the poison event is parked; returns each pass's plan. */
function simulate(projection: typeof batchOnly, { total, poison }: { total: number; poison: number }) {
  const isolation = createIsolation({
    projection,
    batchSize: total,
    onError: 'park',
    maxAttempts: 2,
    maxTransientAttempts: 5,
    logger: silentLogger(),
  });
  let next = 1; // the checkpoint: the first event not applied
  const passes: Array<PassPlan & { outcome: string }> = [];
  while (passes.length < 50) {
    const plan = isolation.nextPass();
    const last = Math.min(total, next + plan.batchSize - 1);
    if (plan.park) {
      expect(plan.park.position).toBe(BigInt(next));
      passes.push({ ...plan, outcome: 'parked' });
      isolation.committed(done(0, { parked: { id: 1n, position: BigInt(next), policy: 'park' } }));
      return { passes, isolating: isolation.isolating };
    }
    if (poison >= next && poison <= last) {
      passes.push({ ...plan, outcome: 'failed' });
      if (plan.perEvent) throw new Error('per-event passes are the runner’s usual isolation, not simulated here');
      const range = { count: last - next + 1, firstPosition: BigInt(next), lastPosition: BigInt(last) };
      isolation.failed(new BatchFailure('sqlBatch', range, divisionByZero));
    } else {
      passes.push({ ...plan, outcome: 'committed' });
      isolation.committed(done(last - next + 1));
      next = last + 1;
    }
  }
  throw new Error('did not park within 50 passes');
}

describe('isolating a batch handler failure', () => {
  it('without per-event handlers: halves the range until the poison event fails alone, then parks it', () => {
    const { passes, isolating } = simulate(batchOnly, { total: 16, poison: 11 });
    expect(passes.map(({ batchSize, outcome }) => `${batchSize}:${outcome}`)).toEqual([
      '16:failed', // 1–16
      '8:committed', // 1–8
      '4:failed', // 9–12
      '2:committed', // 9–10
      '1:failed', // 11, alone: its first attempt
      '1:failed', // its second
      '1:parked',
    ]);
    expect(passes.at(-1)!.park!.failure.message).toBe(
      'division by zero (batch handler failed first on the batch of 16 events from position 1 to 16)',
    );
    expect(passes.at(-1)!.park!.attempts).toBe(2);
    expect(isolating).toBe(false);
  });

  it('with per-event handlers that take every type: retries the failing batch per event', () => {
    const isolation = createIsolation({
      projection: withHandlers,
      batchSize: 100,
      onError: 'park',
      maxAttempts: 3,
      maxTransientAttempts: 5,
      logger: silentLogger(),
    });
    isolation.failed(new BatchFailure('sqlBatch', { count: 40, firstPosition: 1n, lastPosition: 40n }, divisionByZero));
    expect(isolation.nextPass()).toEqual({ batchSize: 40, perEvent: true });
    isolation.committed(done(40, { form: 'perEvent' })); // per event, nothing failed
    expect(isolation.isolating).toBe(false);
    expect(isolation.nextPass()).toEqual({ batchSize: 100 });
  });

  it('ends isolation when every part applies: the events failed only together', () => {
    const isolation = createIsolation({
      projection: batchOnly,
      batchSize: 10,
      onError: 'park',
      maxAttempts: 3,
      maxTransientAttempts: 5,
      logger: silentLogger(),
    });
    isolation.failed(new BatchFailure('sqlBatch', { count: 4, firstPosition: 1n, lastPosition: 4n }, divisionByZero));
    expect(isolation.nextPass()).toEqual({ batchSize: 2 });
    isolation.committed(done(2));
    expect(isolation.nextPass()).toEqual({ batchSize: 1 });
    isolation.committed(done(1));
    isolation.committed(done(1));
    expect(isolation.isolating).toBe(false);
    expect(isolation.nextPass()).toEqual({ batchSize: 10 });
  });
});
