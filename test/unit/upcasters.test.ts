import { describe, expect, it } from 'vitest';
import { isUserError } from '../../src/errors.js';
import { compileYamlProjection } from '../../src/projection/compileYamlProjection.js';
import { defineProjection } from '../../src/projection/defineProjection.js';
import { replaceBatchEventsCalls } from '../../src/projection/sqlLexer.js';
import type { ProjdEvent, ProjectionDb, ProjectionDefinition } from '../../src/projection/types.js';
import { upcastEvent } from '../../src/projection/upcasters.js';

function event(schemaVersion: number, data: unknown, type = 'item.added'): ProjdEvent {
  return {
    position: 7n,
    transactionId: 1n,
    streamId: 'cart-1',
    streamVersion: 1,
    type,
    data,
    metadata: {},
    schemaVersion,
    createdAt: new Date('2024-05-01T10:00:00Z'),
  };
}

const ITEMS = {
  name: 'items',
  version: 1,
  handlers: { 'item.added': () => {}, 'item.removed': () => {} },
  upcasters: {
    'item.added': {
      1: ({ qty, ...data }: { qty: number }) => ({ ...data, quantity: qty }),
      2: (data: object) => ({ unit: 'each', ...data }),
    },
  },
} satisfies ProjectionDefinition;

function errorOf(define: () => unknown): string {
  try {
    define();
  } catch (error) {
    expect(isUserError(error)).toBe(true);
    return (error as Error).message;
  }
  throw new Error('expected a UserError');
}

describe('module upcasters', () => {
  const items = defineProjection(ITEMS);

  it('lift data step by step to the current version, one past the highest key', () => {
    expect(upcastEvent(items, event(1, { sku: 'a', qty: 2 }))).toMatchObject({ data: { unit: 'each', sku: 'a', quantity: 2 }, schemaVersion: 3 });
    expect(upcastEvent(items, event(2, { sku: 'a', quantity: 2 }))).toMatchObject({ data: { unit: 'each', sku: 'a', quantity: 2 }, schemaVersion: 3 });
  });

  it('leave current events, and events of types without upcasters, as stored', () => {
    const current = event(3, { sku: 'a' });
    expect(upcastEvent(items, current)).toBe(current);
    const other = event(5, { sku: 'a' }, 'item.removed');
    expect(upcastEvent(items, other)).toBe(other);
  });

  it('refuse a version with no path up, naming the type and the versions known', () => {
    expect(() => upcastEvent(items, event(4, {}))).toThrow(
      "projection 'items': 'item.added' event has schema version 4; it knows versions 1 to 3",
    );
    const fromTwo = defineProjection({ ...ITEMS, upcasters: { 'item.added': { 2: (data: unknown) => data } } });
    expect(() => upcastEvent(fromTwo, event(1, {}))).toThrow(
      "projection 'items': 'item.added' event has schema version 1; it knows versions 2 to 3",
    );
  });

  it('refuse an upcaster that returns nothing', () => {
    const broken = defineProjection({ ...ITEMS, upcasters: { 'item.added': { 1: () => undefined } } });
    expect(() => upcastEvent(broken, event(1, {}))).toThrow(
      "projection 'items': upcaster for 'item.added' from version 1 returned undefined; it returns the next version's data",
    );
  });

  it('are checked at definition, naming the projection and the key at fault', () => {
    const define = (upcasters: unknown, more: object = {}) => () => defineProjection({ ...ITEMS, ...more, upcasters } as never);
    expect(errorOf(define([]))).toBe("projection 'items': upcasters must be an object of event type → { version: upcaster }, got a list");
    expect(errorOf(define({ 'item.*': { 1: () => ({}) } }))).toBe(
      "projection 'items': upcasters are per event type; 'item.*' is a pattern, name each type it stands for",
    );
    expect(errorOf(define({ 'order.placed': { 1: () => ({}) } }))).toBe(
      "projection 'items': upcasters for 'order.placed', which the projection does not read (item.added, item.removed)",
    );
    expect(errorOf(define({ 'item.added': { 0: () => ({}) } }))).toBe(
      `projection 'items': upcasters for 'item.added': version "0" must be a positive integer (the version it lifts from)`,
    );
    expect(errorOf(define({ 'item.added': { 1: 'data' } }))).toBe(
      `projection 'items': upcaster for 'item.added' from version 1 must be a function (data, event) => the next version's data, got "data"`,
    );
    expect(errorOf(define({ 'item.added': { 1: () => ({}), 3: () => ({}) } }))).toBe(
      "projection 'items': upcasters for 'item.added' have no step from version 2: give one for each version from 1 to 3",
    );
    expect(errorOf(define({ 'item.added': {} }))).toBe(
      "projection 'items': upcasters for 'item.added' must be an object of version → upcaster, got an object",
    );
    expect(errorOf(define(ITEMS.upcasters, { handlers: undefined, eventTypes: ['item.added'], batch: 'select 1' }))).toBe(
      "projection 'items': upcasters are functions, which batch SQL cannot apply: lift the data in the batch SQL, or use handleBatch",
    );
  });
});

const YAML = `name: items
version: 1
upcasters:
  item.added:
    1: (data - 'qty') || jsonb_build_object('quantity', data->'qty')
    2: jsonb_build_object('unit', 'each') || data
handlers:
  item.added: insert into items (sku, quantity, version) values (:data->>'sku', (:data->>'quantity')::integer, :schemaVersion)
`;

function recordingDb(): ProjectionDb & { calls: Array<{ text: string; values: readonly unknown[] | undefined }> } {
  const calls: Array<{ text: string; values: readonly unknown[] | undefined }> = [];
  return {
    calls,
    query: async (text, values) => {
      calls.push({ text, values });
      return { rows: [], rowCount: 0 };
    },
  };
}

describe('YAML upcasters', () => {
  const items = compileYamlProjection(YAML, 'projections/items.yaml');
  const handler = items.handlers.get('item.added')!;

  it('run a current event with the statement as written', () => {
    const db = recordingDb();
    void handler(event(3, { sku: 'a', quantity: 2, unit: 'kg' }), db);
    expect(db.calls).toEqual([
      {
        text: "insert into items (sku, quantity, version) values ($1::jsonb->>'sku', ($1::jsonb->>'quantity')::integer, $2::integer)",
        values: ['{"sku":"a","quantity":2,"unit":"kg"}', 3],
      },
    ]);
  });

  it('run an older event with :data lifted in SQL, step by step, and :schemaVersion current', () => {
    const db = recordingDb();
    void handler(event(2, { sku: 'a', quantity: 2 }), db);
    const lifted = "(select (jsonb_build_object('unit', 'each') || data)::jsonb from (select $1::jsonb as data) as projd_upcast_2)";
    expect(db.calls).toEqual([
      {
        text: `insert into items (sku, quantity, version) values (${lifted}->>'sku', (${lifted}->>'quantity')::integer, $2::integer)`,
        values: ['{"sku":"a","quantity":2}', 3],
      },
    ]);
    const fromOne = recordingDb();
    void handler(event(1, { sku: 'a', qty: 2 }), fromOne);
    expect(fromOne.calls[0]!.text).toContain(
      "(select (jsonb_build_object('unit', 'each') || data)::jsonb from (select (select ((data - 'qty') || jsonb_build_object('quantity', data->'qty'))::jsonb from (select $1::jsonb as data) as projd_upcast_1) as data) as projd_upcast_2)",
    );
  });

  it('refuse an event with no path up before sending anything', () => {
    const db = recordingDb();
    expect(() => handler(event(4, {}), db)).toThrow("projection 'items': 'item.added' event has schema version 4; it knows versions 1 to 3");
    expect(db.calls).toEqual([]);
  });

  it('rewrite projd.batch_events() in batch SQL, naming it batch_events when it has no alias', () => {
    const batch = compileYamlProjection(
      `name: items\nversion: 1\neventTypes: [item.added]\nupcasters:\n  item.added:\n    1: data\nbatch: select count(*) from projd.batch_events() where data ? 'sku'\n`,
      'projections/items.yaml',
    ).batch!;
    expect(batch[0]).toMatch(/^select count\(\*\) from \(select e\.position, .* from projd\.batch_events\(\) as e\) as batch_events where data \? 'sku'$/);
    expect(batch[0]).toContain("when e.type = 'item.added' then projd.schema_version_unknown('items', e.type, e.schema_version, 1, 2)");
  });

  it('are checked at load, naming file, line and key', () => {
    const errorOfYaml = (yaml: string) => errorOf(() => compileYamlProjection(yaml, 'projections/items.yaml'));
    expect(errorOfYaml(YAML.replace('    2: jsonb', '    two: jsonb'))).toBe(
      `projections/items.yaml:6:5: projection 'items': upcasters for 'item.added': version "two" must be a positive integer (the version it lifts from)`,
    );
    expect(errorOfYaml(YAML.replace('  item.added:\n    1:', '  item.removed:\n    1:'))).toBe(
      "projections/items.yaml:4:3: projection 'items': upcasters for 'item.removed', which the projection does not read (item.added)",
    );
    expect(errorOfYaml(YAML.replace('    1: (data', '    1: [data]\n    3: (data'))).toBe(
      `projections/items.yaml:5:5: projection 'items': upcaster for 'item.added' from version 1 must be a SQL expression over data (a non-empty string), got a list`,
    );
    const ordinality = `name: items\nversion: 1\neventTypes: [item.added]\nupcasters:\n  item.added:\n    1: data\nbatch: select * from projd.batch_events() with ordinality\n`;
    expect(errorOfYaml(ordinality)).toBe(
      "projections/items.yaml:7:1: projection 'items': with upcasters, batch SQL reads projd.batch_events() with ordinality; number the rows with row_number() over () instead",
    );
    expect(errorOfYaml(ordinality.replace('projd.batch_events() with ordinality', 'projd."batch_events"()'))).toBe(
      `projections/items.yaml:7:1: projection 'items': with upcasters, batch SQL names "batch_events" quoted; write projd.batch_events() unquoted`,
    );
  });
});

describe('replaceBatchEventsCalls', () => {
  const mark = (sql: string) => replaceBatchEventsCalls(sql, (aliased) => (aliased ? '<aliased>' : '<bare>'));

  it('tells an aliased call from a bare one', () => {
    expect(mark('select * from projd.batch_events() e')).toBe('select * from <aliased> e');
    expect(mark('select * from projd.batch_events() as e')).toBe('select * from <aliased> as e');
    expect(mark('select * from PROJD . batch_events ( ) /* c */ "E"')).toBe('select * from <aliased> /* c */ "E"');
    expect(mark('select * from projd.batch_events() where true')).toBe('select * from <bare> where true');
    expect(mark('select * from projd.batch_events()')).toBe('select * from <bare>');
    expect(mark('select * from (select 1 from projd.batch_events()) x, projd.batch_events() join t on true')).toBe(
      'select * from (select 1 from <bare>) x, <bare> join t on true',
    );
  });

  it('leaves strings, comments and other functions alone', () => {
    const sql = "select 'projd.batch_events()' -- projd.batch_events()\n from myprojd.batch_events() e, projd.batch_events_x() f";
    expect(mark(sql)).toBe(sql);
  });
});
