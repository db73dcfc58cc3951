import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/loadConfig.js';
import { compileYamlProjection } from '../../src/projection/compileYamlProjection.js';
import { defineProjection } from '../../src/projection/defineProjection.js';
import { startIsolatedPostgres } from '../helpers/database.js';
import { waitFor } from '../helpers/waitFor.js';

// Writers hold transactions open, which holds back the xmin horizon of the whole server.
let server: Awaited<ReturnType<typeof startIsolatedPostgres>>;
let pool: pg.Pool;
let app: App | undefined;

/**
 * The read model both projections build, each in tables of its own: per stream, the positions
 * in the order they were applied, each with how many events were applied before it; overall,
 * the count and the last position applied. Order matters within a stream, across the batch,
 * and between an event's two statements.
 */
function setupSql(name: string): string[] {
  return [
    `create table if not exists ${name}_streams (stream_id text primary key, positions text not null, events integer not null)`,
    `create table if not exists ${name}_totals (events integer not null, last_position bigint)`,
    `insert into ${name}_totals (events) select 0 where not exists (select from ${name}_totals)`,
  ];
}

function statementsSql(name: string, param: (field: 'streamId' | 'position') => string): string[] {
  return [
    `insert into ${name}_streams (stream_id, positions, events)
     values (${param('streamId')}, ${param('position')}::text || '/' || (select events from ${name}_totals), 1)
     on conflict (stream_id) do update
       set positions = ${name}_streams.positions || ',' || excluded.positions, events = ${name}_streams.events + 1`,
    `update ${name}_totals set events = events + 1, last_position = ${param('position')}`,
  ];
}

const awaited = defineProjection({
  name: 'awaited',
  version: 1,
  setup: setupSql('awaited'),
  handlers: {
    't': async (event, db) => {
      const [perStream, totals] = statementsSql('awaited', (field) => (field === 'streamId' ? '$1' : '$2'));
      await db.query(perStream!, [event.streamId, event.position]);
      await db.query(totals!.replace('$2', '$1'), [event.position]);
    },
  },
});

const pipelined = compileYamlProjection(
  [
    'name: pipelined',
    'version: 1',
    `setup: ${JSON.stringify(setupSql('pipelined'))}`,
    'handlers:',
    `  t: ${JSON.stringify(statementsSql('pipelined', (field) => `:${field}`))}`,
  ].join('\n'),
  'pipelined.yaml',
);

/** One text per read model, to compare whole read models at once. */
async function checksum(name: string): Promise<string> {
  const { rows } = await pool.query<{ sum: string }>(
    `select md5(coalesce((select string_agg(stream_id || '=' || positions || '#' || events, ';' order by stream_id)
                            from ${name}_streams), '')
                || '|' || (select events || '@' || coalesce(last_position::text, '') from ${name}_totals)) as sum`,
  );
  return rows[0]!.sum;
}

/** The same read model from the events themselves, in delivery order. */
async function expectedChecksum(): Promise<string> {
  const { rows } = await pool.query<{ sum: string }>(
    `with delivered as (
       select stream_id, transaction_id, position,
              row_number() over (order by transaction_id, position) - 1 as before
         from projd.events
     ), per_stream as (
       select stream_id, string_agg(position || '/' || before, ',' order by transaction_id, position) as positions,
              count(*) as events
         from delivered group by stream_id
     )
     select md5(coalesce((select string_agg(stream_id || '=' || positions || '#' || events, ';' order by stream_id)
                            from per_stream), '')
                || '|' || (select count(*) || '@' || coalesce((select position::text from projd.events
                                                               order by transaction_id desc, position desc limit 1), '')
                             from projd.events)) as sum`,
  );
  return rows[0]!.sum;
}

async function applied(name: string): Promise<number> {
  const { rows } = await pool.query<{ events: number }>(`select events from ${name}_totals`);
  return rows[0]?.events ?? 0;
}

beforeAll(async () => {
  server = await startIsolatedPostgres();
  pool = new pg.Pool({ connectionString: server.url, max: 8 });
  pool.on('error', () => {});
  const config = await loadConfig({ env: { DATABASE_URL: server.url }, cwd: process.cwd() });
  config.projections.batchSize = 25; // many batches, each with statements in flight
  config.metrics.port = 0;
  app = createApp(config, { projections: [awaited, pipelined] });
  await app.start();
  await app.caughtUp();
});

afterAll(async () => {
  await app?.stop();
  await pool?.end();
  await server?.stop();
});

describe('a pipelined YAML handler', () => {
  it('builds the same read model as awaited statements, under writers that commit out of order', async () => {
    // 6 writers, each with 3 streams of its own, run transactions of 1–3 inserts that yield to
    // the others between inserts: positions interleave and commits land out of position order.
    let appliedWhileWriting = false;
    const writers = Array.from({ length: 6 }, async (_, writer) => {
      const client = await pool.connect();
      const versions = [0, 0, 0];
      try {
        for (let tx = 0; tx < 30 || (!appliedWhileWriting && tx < 500); tx += 1) {
          await client.query('begin');
          for (let i = 0; i < 1 + ((writer + tx) % 3); i += 1) {
            const stream = (tx + i) % 3;
            versions[stream]! += 1;
            await client.query(
              `insert into projd.events (stream_id, stream_version, type, data) values ($1, $2, 't', '{}')`,
              [`w${writer}-s${stream}`, versions[stream]],
            );
            await new Promise((resolve) => setImmediate(resolve));
          }
          await client.query('commit');
          appliedWhileWriting ||= (await applied('pipelined')) > 0;
        }
      } finally {
        client.release();
      }
    });
    await Promise.all(writers);
    expect(appliedWhileWriting, 'the daemon committed a batch while the writers wrote').toBe(true);

    const { rows } = await pool.query<{ n: number }>('select count(*)::int as n from projd.events');
    await waitFor(async () => (await applied('pipelined')) === rows[0]!.n && (await applied('awaited')) === rows[0]!.n, {
      timeoutMs: 30_000,
      message: `all ${rows[0]!.n} events applied by both`,
    });
    const expected = await expectedChecksum();
    expect(await checksum('awaited')).toBe(expected);
    expect(await checksum('pipelined')).toBe(expected);
  }, 60_000);
});
