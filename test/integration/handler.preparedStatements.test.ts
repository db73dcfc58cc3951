import { describe, expect, it } from 'vitest';
import { startDaemon } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { appendItems } from '../helpers/items.js';
import { writeProject } from '../helpers/project.js';
import { waitFor } from '../helpers/waitFor.js';

const db = await createTestDatabase();

// Reads its own row with `select *` (a prepared statement whose result columns are fixed when
// it is prepared), then counts the event.
const projection = `import { defineProjection } from 'projd';
export default defineProjection({
  name: 'rows',
  version: 1,
  setup: 'create table if not exists rows (stream_id text primary key, events integer not null)',
  handlers: {
    'item.added': async (event, db) => {
      const { rows } = await db.query('select * from rows where stream_id = $1', [event.streamId]);
      await db.query(
        rows.length === 0
          ? 'insert into rows (stream_id, events) values ($1, 1)'
          : 'update rows set events = events + 1 where stream_id = $1',
        [event.streamId],
      );
    },
  },
});
`;

// The same in YAML, whose statements go out in pipeline: the stale one fails with others
// queued behind it in the same transaction.
const yamlProjection = `name: yaml_rows
version: 1
setup: create table if not exists yaml_rows (stream_id text primary key, events integer not null)
handlers:
  item.added:
    - select * from yaml_rows where stream_id = :streamId
    - insert into yaml_rows (stream_id, events) values (:streamId, 1)
      on conflict (stream_id) do update set events = yaml_rows.events + 1
`;

async function totalEvents(table = 'rows'): Promise<number> {
  const { rows } = await db.pool.query<{ n: string | null }>(`select sum(events) as n from ${table}`);
  return Number(rows[0]!.n ?? 0);
}

describe('prepared handler statements', () => {
  it('recover when a table changes under them, with nothing parked', async () => {
    const project = await writeProject({
      'projd.yaml': 'database:\n  poolSize: 1\nmetrics:\n  port: 0\n',
      'projections/rows.ts': projection,
    });
    try {
      const daemon = startDaemon(['run'], { cwd: project.dir, env: { DATABASE_URL: db.url } });
      await appendItems(db.pool, 100);
      await waitFor(async () => (await totalEvents()) === 100, { timeoutMs: 30_000, message: 'first 100 applied' });

      // The prepared `select *` now returns a column more: PostgreSQL refuses to run it (0A000).
      await db.pool.query('alter table rows add column note text');
      await appendItems(db.pool, 100);
      await waitFor(async () => (await totalEvents()) === 200, { timeoutMs: 30_000, message: 'next 100 applied' });
      expect(await daemon.stop()).toBe(0);

      const { rows } = await db.pool.query('select count(*)::int as n from projd.failed_events');
      expect(rows[0]).toEqual({ n: 0 });
      const stale = daemon
        .logs()
        .filter((line) => typeof line.msg === 'string' && line.msg.startsWith('batch.failed'))
        .map((line) => (line.err as { code?: string } | undefined)?.code);
      expect(stale).toEqual(['0A000']); // one retry, on a fresh connection
    } finally {
      await project.cleanup();
    }
  }, 60_000);

  it('recover in a pipelined YAML handler too, with nothing parked', async () => {
    const project = await writeProject({
      'projd.yaml': 'database:\n  poolSize: 1\nmetrics:\n  port: 0\n',
      'projections/yaml_rows.yaml': yamlProjection,
    });
    try {
      const daemon = startDaemon(['run'], { cwd: project.dir, env: { DATABASE_URL: db.url } });
      await appendItems(db.pool, 100);
      const { rows: events } = await db.pool.query<{ n: number }>('select count(*)::int as n from projd.events');
      const before = events[0]!.n;
      await waitFor(async () => (await totalEvents('yaml_rows')) === before, { timeoutMs: 30_000, message: 'caught up' });

      await db.pool.query('alter table yaml_rows add column note text');
      await appendItems(db.pool, 100);
      await waitFor(async () => (await totalEvents('yaml_rows')) === before + 100, {
        timeoutMs: 30_000,
        message: 'the next 100 applied',
      });
      expect(await daemon.stop()).toBe(0);

      const { rows } = await db.pool.query("select count(*)::int as n from projd.failed_events where projection = 'yaml_rows'");
      expect(rows[0]).toEqual({ n: 0 });
      const stale = daemon
        .logs()
        .filter((line) => typeof line.msg === 'string' && line.msg.startsWith('batch.failed'))
        .map((line) => (line.err as { code?: string } | undefined)?.code);
      expect(stale).toEqual(['0A000']); // one retry, on a fresh connection
    } finally {
      await project.cleanup();
    }
  }, 60_000);
});
