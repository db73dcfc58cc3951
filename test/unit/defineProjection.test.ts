import { describe, expect, it } from 'vitest';
import { isUserError } from '../../src/errors.js';
import { checkProjectionDefinition, defineProjection, isProjection } from '../../src/projection/defineProjection.js';
import { PROJECTION_KIND, type ProjectionDefinition } from '../../src/projection/types.js';

const noop = async (): Promise<void> => {};

function valid(overrides: Record<string, unknown> = {}): ProjectionDefinition {
  return {
    name: 'balances',
    version: 1,
    setup: 'create table if not exists balances (id text primary key)',
    reset: 'truncate balances',
    handlers: { 'account.credited': noop, 'account.debited': noop },
    ...overrides,
  } as ProjectionDefinition;
}

/** The UserError message `defineProjection` throws for a definition. */
function errorOf(definition: unknown): string {
  try {
    defineProjection(definition as ProjectionDefinition);
  } catch (error) {
    expect(isUserError(error)).toBe(true);
    const message = (error as Error).message;
    expect(message).not.toContain('\n');
    return message;
  }
  throw new Error('expected defineProjection to throw');
}

describe('defineProjection', () => {
  it('normalizes a definition into a frozen, branded projection', () => {
    const credited = async (): Promise<void> => {};
    const projection = defineProjection(
      valid({ setup: ['create table a (id int)', 'create table b (id int)'], handlers: { 'b.x': noop, 'a.y': credited } }),
    );

    expect(projection.kind).toBe(PROJECTION_KIND);
    expect(typeof projection.kind).toBe('string');
    expect(projection.name).toBe('balances');
    expect(projection.version).toBe(1);
    expect(projection.setup).toEqual(['create table a (id int)', 'create table b (id int)']);
    expect(projection.reset).toEqual(['truncate balances']);
    expect(projection.eventTypes).toEqual(['a.y', 'b.x']);
    expect(projection.handlers).toBeInstanceOf(Map);
    expect(projection.handlers.get('a.y')).toBe(credited);
    expect(projection.source).toBeUndefined();
    expect(Object.isFrozen(projection)).toBe(true);
    expect(Object.isFrozen(projection.setup)).toBe(true);
    expect(Object.isFrozen(projection.eventTypes)).toBe(true);
    expect(isProjection(projection)).toBe(true);
  });

  it('accepts prefix patterns and a catch-all among exact types', () => {
    const projection = defineProjection(valid({ handlers: { '*': noop, 'account.*': noop, 'account.credited': noop } }));
    expect(projection.eventTypes).toEqual(['*', 'account.*', 'account.credited']);
  });

  it('defaults setup and reset to no statements', () => {
    const projection = defineProjection({ name: 'a', version: 3, handlers: { x: noop } });
    expect(projection.setup).toEqual([]);
    expect(projection.reset).toEqual([]);
  });

  it('splits into 1 part unless partitions says more', () => {
    expect(defineProjection(valid()).partitions).toBe(1);
    expect(defineProjection(valid({ partitions: 4 })).partitions).toBe(4);
    expect(defineProjection(valid({ partitions: 256 })).partitions).toBe(256);
  });

  it('does not keep a reference to the caller’s arrays', () => {
    const setup = ['create table a (id int)'];
    const projection = defineProjection(valid({ setup }));
    setup.push('drop table a');
    expect(projection.setup).toEqual(['create table a (id int)']);
  });

  it('recognises a projection by its string brand, not by its class', () => {
    expect(isProjection({ kind: PROJECTION_KIND })).toBe(true);
    expect(isProjection({ kind: 'something else' })).toBe(false);
    expect(isProjection(null)).toBe(false);
  });

  describe('names the projection and the key at fault', () => {
    it.each([
      [{ name: 'Balances' }, `projection 'Balances': name must match [a-z][a-z0-9_]* (lowercase letters, digits, _), got "Balances"`],
      [{ name: '1st' }, `projection '1st': name must match [a-z][a-z0-9_]* (lowercase letters, digits, _), got "1st"`],
      [{ name: 'with-dash' }, `projection 'with-dash': name must match [a-z][a-z0-9_]* (lowercase letters, digits, _), got "with-dash"`],
      [{ name: 42 }, 'projection: name must match [a-z][a-z0-9_]* (lowercase letters, digits, _), got 42'],
      [{ name: undefined }, 'projection: name is required'],
      [{ name: 'a'.repeat(64) }, `projection '${'a'.repeat(64)}': name must be at most 63 characters, got 64`],
      [{ version: '1' }, `projection 'balances': version must be a positive integer, got "1"`],
      [{ version: 0 }, `projection 'balances': version must be a positive integer, got 0`],
      [{ version: -2 }, `projection 'balances': version must be a positive integer, got -2`],
      [{ version: 1.5 }, `projection 'balances': version must be a positive integer, got 1.5`],
      [{ version: Number.NaN }, `projection 'balances': version must be a positive integer, got NaN`],
      [{ version: 2 ** 31 }, `projection 'balances': version must be at most 2147483647, got 2147483648`],
      [{ version: undefined }, `projection 'balances': version is required`],
      [{ setup: '  ' }, `projection 'balances': setup must not be empty`],
      [{ setup: 42 }, `projection 'balances': setup must be a SQL string or a list of SQL strings, got 42`],
      [{ reset: ['truncate a', ''] }, `projection 'balances': reset[1] must be a non-empty SQL string, got ""`],
      [{ reset: [null] }, `projection 'balances': reset[0] must be a non-empty SQL string, got null`],
      [{ partitions: 0 }, `projection 'balances': partitions must be an integer from 1 to 256, got 0`],
      [{ partitions: 257 }, `projection 'balances': partitions must be an integer from 1 to 256, got 257`],
      [{ partitions: 2.5 }, `projection 'balances': partitions must be an integer from 1 to 256, got 2.5`],
      [{ partitions: '4' }, `projection 'balances': partitions must be an integer from 1 to 256, got "4"`],
            [{ handlers: undefined }, `projection 'balances': handlers is required (or a batch form: batch or handleBatch)`],
      [{ handlers: {} }, `projection 'balances': handlers must name at least one event type`],
      [{ handlers: [noop] }, `projection 'balances': handlers must be an object of event type → function, got a list`],
      [{ handlers: new Map() }, `projection 'balances': handlers must be an object of event type → function, got an instance of Map`],
      [{ handlers: { 'a.b': 'insert …' } }, `projection 'balances': handler for 'a.b' must be a function, got "insert …"`],
      [{ handlers: { '': noop } }, `projection 'balances': handlers has an empty event type`],
      [{ handlers: { ' a.b': noop } }, `projection 'balances': event type " a.b" has leading or trailing spaces`],
      [{ batchSize: 0 }, `projection 'balances': batchSize must be an integer from 1 to 100000, got 0`],
      [{ handleBatch: 'insert …' }, `projection 'balances': handleBatch must be a function (events, db), got "insert …"`],
      [{ batch: 'select 1', handleBatch: noop }, `projection 'balances': give batch (SQL) or handleBatch (a function), not both`],
      [{ batch: ['select 1', ' '] }, `projection 'balances': batch[1] must be a non-empty SQL string, got " "`],
      [{ handlers: undefined, batch: 'select 1' }, `projection 'balances': eventTypes is required when there are no handlers: the event types the batch reads`],
      [{ eventTypes: [] }, `projection 'balances': eventTypes must be a non-empty list of event types, got a list`],
      [{ eventTypes: 'account.credited' }, `projection 'balances': eventTypes must be a non-empty list of event types, got "account.credited"`],
      [{ eventTypes: ['account.credited', 7] }, `projection 'balances': eventTypes[1] must be a string, got 7`],
      [{ eventTypes: ['account.credited', 'account.credited'] }, `projection 'balances': eventTypes lists 'account.credited' twice`],
      [{ eventTypes: ['account.credited'] }, `projection 'balances': handler for 'account.debited' is not listed in eventTypes (account.credited)`],
      [
        { eventTypes: ['account.credited', 'account.debited', 'account.opened'] },
        `projection 'balances': eventTypes lists 'account.opened', which has no handler (and there is no batch form)`,
      ],
      ...['account*', 'account.*.x', '*.credited', 'a.**', '.*', '**', 'account.%*'].map(
        (key): [Record<string, unknown>, string] => [
          { handlers: { [key]: noop } },
          `projection 'balances': event type pattern '${key}' is not valid: '*' stands alone ('*', every event) or ends a prefix ('account.*')`,
        ],
      ),
    ])('%o', (overrides, message) => {
      expect(errorOf(valid(overrides))).toBe(message);
    });
  });

  it('takes a batch form, with or without per-event handlers', () => {
    const sqlOnly = defineProjection(valid({ handlers: undefined, eventTypes: ['b.x', 'a.*'], batch: 'insert into t select 1' }));
    expect(sqlOnly.handlers.size).toBe(0);
    expect(sqlOnly.eventTypes).toEqual(['a.*', 'b.x']);
    expect(sqlOnly.batch).toEqual(['insert into t select 1']);
    const handleBatch = async (): Promise<void> => {};
    const both = defineProjection(
      valid({ eventTypes: ['account.credited', 'account.debited', 'account.opened'], handleBatch, batchSize: 5000 }),
    );
    expect(both.handleBatch).toBe(handleBatch);
    expect(both.batchSize).toBe(5000);
    expect(both.eventTypes).toEqual(['account.credited', 'account.debited', 'account.opened']);
    expect(Object.isFrozen(sqlOnly.batch)).toBe(true);
  });

  it('rejects unknown keys, suggesting the key a typo meant', () => {
    const { handlers, ...rest } = valid();
    expect(errorOf({ ...rest, handler: handlers })).toBe(
      `projection 'balances': unknown key 'handler' (did you mean 'handlers'?); the keys are name, version, setup, reset, eventTypes, handlers, batch, handleBatch, upcasters, batchSize, onError, maxAttempts, partitions`,
    );
    expect(errorOf(valid({ verison: 2 }))).toContain(`unknown key 'verison' (did you mean 'version'?)`);
    expect(errorOf(valid({ source: 'x.ts' }))).toBe(
      `projection 'balances': unknown key 'source'; the keys are name, version, setup, reset, eventTypes, handlers, batch, handleBatch, upcasters, batchSize, onError, maxAttempts, partitions`,
    );
  });

  it('rejects a definition that is not a plain object', () => {
    expect(errorOf(undefined)).toBe('projection: definition must be an object, got undefined');
    expect(errorOf('balances')).toBe('projection: definition must be an object, got "balances"');
    expect(errorOf([])).toBe('projection: definition must be an object, got a list');
    expect(errorOf(new (class Balances {})())).toBe('projection: definition must be an object, got an instance of Balances');
  });

  it('rejects an already defined projection passed in again', () => {
    expect(errorOf(defineProjection(valid()))).toContain(`unknown key 'kind'`);
  });
});

describe('checkProjectionDefinition', () => {
  it('returns the path of the key at fault instead of throwing', () => {
    expect(checkProjectionDefinition(valid({ version: '1' }))).toEqual({
      ok: false,
      path: ['version'],
      message: `projection 'balances': version must be a positive integer, got "1"`,
    });
    expect(checkProjectionDefinition(valid({ setup: ['a', ''] }))).toMatchObject({ ok: false, path: ['setup', '1'] });
    expect(checkProjectionDefinition(valid({ handlers: { 'a.b': 1 } }))).toMatchObject({
      ok: false,
      path: ['handlers', 'a.b'],
    });
    expect(checkProjectionDefinition(valid({ handler: {} }))).toMatchObject({ ok: false, path: ['handler'] });
    expect(checkProjectionDefinition(null)).toMatchObject({ ok: false, path: [] });
  });

  it('accepts a valid definition', () => {
    const check = checkProjectionDefinition(valid());
    expect(check.ok).toBe(true);
  });
});
