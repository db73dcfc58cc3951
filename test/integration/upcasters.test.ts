import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/loadConfig.js';
import { silentLogger } from '../../src/log.js';
import { loadProjectionFile, loadProjections } from '../../src/projection/loadProjections.js';
import { retryFailedEvent } from '../../src/runner/resolveFailedEvents.js';
import { liftedBatchEventsSql } from '../../src/projection/upcastSql.js';
import { appendEvents } from '../../src/store/appendEvents.js';
import { createTestDatabase } from '../helpers/database.js';
import { writeProject, type Project } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

// One event type stored at three schema versions, applied by every form through its upcasters,
// gives the read model of a projection that reads the same events written at the current
// version under a type of its own. An event above the current version is parked (or halts the
// projection), naming the type and the versions.
//   v1 { sku, qty }  →  v2 { sku, quantity }  →  v3 { sku, quantity, unit } (unit 'each' by default)
const EVENTS = 300;
const SKUS = 7;
const POISON_AT = 157; // among the appended events: an 'item.added' at schema version 4

const READ_MODEL = (table: string) =>
  `create table if not exists ${table} (sku text primary key, quantity integer not null, each_quantity integer not null, events integer not null, max_version integer not null)`;
const UPSERT = (table: string, values: string) => `insert into ${table} (sku, quantity, each_quantity, events, max_version)
  ${values}
  on conflict (sku) do update set quantity = ${table}.quantity + excluded.quantity,
    each_quantity = ${table}.each_quantity + excluded.each_quantity, events = ${table}.events + excluded.events,
    max_version = greatest(${table}.max_version, excluded.max_version)`;

const MODULE_UPCASTERS = `{
  'item.added': {
    1: ({ qty, ...data }) => ({ ...data, quantity: qty }),
    2: (data) => ({ unit: 'each', ...data }),
  },
}`;
const YAML_UPCASTERS = `upcasters:
  item.added:
    1: (data - 'qty') || jsonb_build_object('quantity', data->'qty')
    2: jsonb_build_object('unit', 'each') || data
`;

function moduleSource(name: string, form: 'perEvent' | 'moduleBatch', upcasters = MODULE_UPCASTERS): string {
  const apply = `await db.query(${JSON.stringify(
    UPSERT(name, "values ($1, $2::integer, case when $3 = 'each' then $2::integer else 0 end, 1, $4::integer)"),
  )}, [event.data.sku, event.data.quantity, event.data.unit, event.schemaVersion]);`;
  const handler =
    form === 'perEvent'
      ? `handlers: { 'item.added': async (event, db) => { ${apply} } },`
      : `eventTypes: ['item.added'], handleBatch: async (events, db) => { for (const event of events) { ${apply} } },`;
  return `import { defineProjection } from 'projd';
export default defineProjection({
  name: '${name}', version: 1, onError: 'park', maxAttempts: 2,
  setup: ${JSON.stringify(READ_MODEL(name))},
  upcasters: ${upcasters},
  ${handler}
});
`;
}

function yamlPerEventSource(name: string, type = 'item.added', upcasters = YAML_UPCASTERS): string {
  const values = "values (:data->>'sku', (:data->>'quantity')::integer, case when :data->>'unit' = 'each' then (:data->>'quantity')::integer else 0 end, 1, :schemaVersion)";
  return `name: ${name}
version: 1
onError: park
maxAttempts: 2
setup: ${JSON.stringify(READ_MODEL(name))}
${upcasters}handlers:
  ${type}: ${JSON.stringify(UPSERT(name, values))}
`;
}

function yamlBatchSource(name: string, onError: 'park' | 'stop', upcasters = YAML_UPCASTERS): string {
  // Unaliased, and aliased in a join: both read the lifted relation.
  const select = `select data->>'sku', sum((data->>'quantity')::integer),
           sum(case when data->>'unit' = 'each' then (data->>'quantity')::integer else 0 end), count(*), max(schema_version)
      from projd.batch_events()
     group by data->>'sku'`;
  return `name: ${name}
version: 1
onError: ${onError}
maxAttempts: 2
setup: ${JSON.stringify(READ_MODEL(name))}
${upcasters}eventTypes: [item.added]
batch:
  - ${JSON.stringify(UPSERT(name, select))}
  - create temp table if not exists ${name}_seen (n bigint) on commit drop
  - insert into ${name}_seen select count(*) from projd.batch_events() as e join projd.batch_events() f using (position) where e.schema_version = 3 and f.data ? 'unit'
`;
}

const FORMS = ['module_per_event', 'module_batch', 'yaml_per_event', 'yaml_batch'] as const;
const STOPPING = 'yaml_batch_stop';

const db = await createTestDatabase();
let project: Project;
let app: App;
let poisonPosition: string;

/** The `i`-th item event at schema version 1, 2 or 3 (in turn), and the same at version 3. */
function itemEvent(i: number): { stored: { data: Record<string, unknown>; schemaVersion: number }; current: Record<string, unknown> } {
  const sku = `sku-${i % SKUS}`;
  const quantity = (i % 5) + 1;
  const unit = i % 2 === 0 ? 'kg' : 'each';
  const version = (i % 3) + 1;
  if (version === 1) return { stored: { data: { sku, qty: quantity }, schemaVersion: 1 }, current: { unit: 'each', sku, quantity } };
  if (version === 2) return { stored: { data: { sku, quantity }, schemaVersion: 2 }, current: { unit: 'each', sku, quantity } };
  return { stored: { data: { sku, quantity, unit }, schemaVersion: 3 }, current: { sku, quantity, unit } };
}

beforeAll(async () => {
  project = await writeProject({
    'projections/module_per_event.mjs': moduleSource('module_per_event', 'perEvent'),
    'projections/module_batch.mjs': moduleSource('module_batch', 'moduleBatch'),
    'projections/yaml_per_event.yaml': yamlPerEventSource('yaml_per_event'),
    'projections/yaml_batch.yaml': yamlBatchSource('yaml_batch', 'park'),
    [`projections/${STOPPING}.yaml`]: yamlBatchSource(STOPPING, 'stop'),
    'projections/reference.yaml': yamlPerEventSource('reference', 'direct.item.added', ''),
  });
  for (let i = 0; i < EVENTS; i++) {
    if (i === POISON_AT) {
      const { positions } = await appendEvents(db.pool, 'poison-1', [{ type: 'item.added', data: { sku: 'sku-x', quantity: 1 }, schemaVersion: 4 }]);
      poisonPosition = String(positions[0]);
    }
    const { stored, current } = itemEvent(i);
    await appendEvents(db.pool, `cart-${i % 11}`, [{ type: 'item.added', ...stored }]);
    await appendEvents(db.pool, `direct-${i % 11}`, [{ type: 'direct.item.added', data: current }]);
  }

  const config = await loadConfig({ env: { DATABASE_URL: db.url }, cwd: process.cwd() });
  config.projections.batchSize = 40;
  config.projections.sqlBatchSize = 40;
  config.projections.pollInterval = 50;
  config.metrics.port = 0;
  app = createApp(config, { projections: await loadProjections(project.path('projections')), logger: silentLogger() });
  await app.start();
}, 60_000);

afterAll(async () => {
  await app?.stop();
  await project?.cleanup();
});

async function readModel(table: string) {
  const { rows } = await db.pool.query(`select sku, quantity, each_quantity, events, max_version from ${table} order by sku`);
  return rows;
}

async function failedEvents(name: string) {
  const { rows } = await db.pool.query<{ position: string; error_message: string; status: string }>(
    'select position::text, error_message, status from projd.failed_events where projection = $1 order by position',
    [name],
  );
  return rows;
}

async function eventsApplied(table: string): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(`select coalesce(sum(events), 0)::integer as n from ${table}`);
  return rows[0]!.n;
}

describe('event schema versions', () => {
  it('three versions of one type give every form the read model of the same events written at the current version', async () => {
    await waitFor(async () => (await eventsApplied('reference')) === EVENTS, { timeoutMs: 60_000, message: 'reference caught up' });
    const expected = await readModel('reference');
    expect(expected).toHaveLength(SKUS);
    expect(expected.every((row) => row.max_version === 1)).toBe(true); // written directly: never lifted

    for (const name of FORMS) {
      await waitFor(async () => (await eventsApplied(name)) === EVENTS, { timeoutMs: 60_000, message: `${name} applied every event` });
      const rows = await readModel(name);
      expect(rows.map(({ max_version, ...row }) => row), name).toEqual(expected.map(({ max_version, ...row }) => row));
      expect(rows.every((row) => row.max_version === 3), `${name}: handlers see the current schema version`).toBe(true);
    }
  }, 90_000);

  it('an event above the current version is parked, naming its type and the versions the projection knows', async () => {
    const message = "projection '%s': 'item.added' event has schema version 4; it knows versions 1 to 3";
    for (const name of FORMS) {
      const [parked] = await waitFor(async () => {
        const rows = await failedEvents(name);
        return rows.length > 0 && rows;
      }, { timeoutMs: 60_000, message: `${name} parked the event` });
      expect(parked).toMatchObject({ position: poisonPosition, status: 'parked' });
      expect(parked!.error_message.startsWith(message.replace('%s', name)), `${name}: ${parked!.error_message}`).toBe(true);
    }
  }, 90_000);

  it('failed retry applies the parked event through the steps added for it, in every form', async () => {
    // Version 4 becomes known, and a version 5 adds the unit it lacked: the retry lifts it.
    const CURED_MODULE_UPCASTERS = MODULE_UPCASTERS.replace('2:', "3: (data) => data, 4: (data) => ({ unit: 'each', ...data }),\n    2:");
    const CURED_YAML_UPCASTERS = `${YAML_UPCASTERS}    3: data\n    4: jsonb_build_object('unit', 'each') || data\n`;
    const cured = await writeProject({
      'projections/module_per_event.mjs': moduleSource('module_per_event', 'perEvent', CURED_MODULE_UPCASTERS),
      'projections/module_batch.mjs': moduleSource('module_batch', 'moduleBatch', CURED_MODULE_UPCASTERS),
      'projections/yaml_per_event.yaml': yamlPerEventSource('yaml_per_event', 'item.added', CURED_YAML_UPCASTERS),
      'projections/yaml_batch.yaml': yamlBatchSource('yaml_batch', 'park', CURED_YAML_UPCASTERS),
    });
    try {
      for (const name of FORMS) {
        const projection = await loadProjectionFile(cured.path(`projections/${name}.${name.startsWith('module') ? 'mjs' : 'yaml'}`));
        const [parked] = await waitFor(async () => {
          const { rows } = await db.pool.query<{ id: string }>(`select id::text from projd.failed_events where projection = $1 and status = 'parked'`, [name]);
          return rows.length > 0 && rows;
        }, { timeoutMs: 60_000, message: `${name} parked the event` });
        expect((await retryFailedEvent(db.pool, new Map([[name, projection]]), BigInt(parked!.id))).outcome, name).toBe('retried');
        const { rows } = await db.pool.query(`select sku, quantity, each_quantity, events, max_version from ${name} where sku = 'sku-x'`);
        expect(rows, name).toEqual([{ sku: 'sku-x', quantity: 1, each_quantity: 1, events: 1, max_version: 5 }]);
      }
    } finally {
      await cured.cleanup();
    }
  }, 90_000);

  it('onError stop halts the projection right before it', async () => {
    await waitFor(() => app.projections().find((projection) => projection.name === STOPPING)?.state === 'failed', {
      timeoutMs: 60_000,
      message: `${STOPPING} halted`,
    });
    expect((await failedEvents(STOPPING)).map(({ position }) => position)).toEqual([poisonPosition]);
    expect(await eventsApplied(STOPPING)).toBe(POISON_AT);
  }, 90_000);

  it('the lifted relation has the columns of projd.events, in their order', async () => {
    const lifted = liftedBatchEventsSql('p', new Map([['t', { lowest: 1, current: 2, steps: ['data'] }]]));
    const [events, relation] = await Promise.all([
      db.pool.query('select * from projd.events limit 0'),
      db.pool.query(`select * from ${lifted} as lifted limit 0`),
    ]);
    expect(relation.fields.map(({ name, dataTypeID }) => ({ name, dataTypeID }))).toEqual(
      events.fields.map(({ name, dataTypeID }) => ({ name, dataTypeID })),
    );
  });
});
