import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIsolatedPostgres, type IsolatedPostgres } from '../helpers/database.js';
import { waitFor } from '../helpers/waitFor.js';

// The insert triggers of projd.events, driven with plain INSERTs as any client writes them.
// These tests hold transactions open, which holds back the xmin horizon of the whole server,
// so they get a server of their own.
let server: IsolatedPostgres;

beforeAll(async () => {
  server = await startIsolatedPostgres();
});

afterAll(async () => {
  await server?.stop();
});

const appendSql = `insert into projd.events (stream_id, stream_version, type, data) values ($1, $2, 't', '{}')`;

async function append(db: pg.ClientBase | pg.Pool, streamId: string, version: number): Promise<void> {
  await db.query(appendSql, [streamId, version]);
}

const pids = new WeakMap<pg.Client, number>();

/** A connection of its own, for a transaction held open across steps. */
async function connect(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: server.url });
  client.on('error', () => {});
  await client.connect();
  const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
  pids.set(client, rows[0]!.pid);
  return client;
}

async function withClients<T>(count: number, use: (...clients: pg.Client[]) => Promise<T>): Promise<T> {
  const clients = await Promise.all(Array.from({ length: count }, connect));
  try {
    return await use(...clients);
  } finally {
    await Promise.all(clients.map((client) => client.end().catch(() => undefined)));
  }
}

async function versionsOf(streamId: string): Promise<number[]> {
  const { rows } = await server.pool.query<{ stream_version: number }>(
    'select stream_version from projd.events where stream_id = $1 order by stream_version',
    [streamId],
  );
  return rows.map((row) => row.stream_version);
}

/** Until `client` waits for a lock (here: the transaction that holds the key it inserts). */
async function waitUntilBlocked(client: pg.Client): Promise<void> {
  const pid = pids.get(client)!;
  await waitFor(
    async () => {
      const { rows } = await server.pool.query<{ blocked: boolean }>(
        'select cardinality(pg_blocking_pids($1)) > 0 as blocked',
        [pid],
      );
      return rows[0]!.blocked;
    },
    { timeoutMs: 10_000, message: `backend ${pid} waiting for the other writer` },
  );
}

/** Tuples the triggers have read from projd.events in this transaction so far: by scans of the table and of its indexes. */
async function tuplesRead(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ read: number }>(`
    select (pg_stat_get_xact_tuples_returned('projd.events'::regclass)
          + pg_stat_get_xact_tuples_fetched('projd.events'::regclass)
          + (select sum(pg_stat_get_xact_tuples_returned(indexrelid)) from pg_index
              where indrelid = 'projd.events'::regclass))::int as read`);
  return rows[0]!.read;
}

describe('appending costs a constant per row', () => {
  // Counted, not timed: the tuples the triggers read show the growth that made a 20,000-row
  // import quadratic (the era check walked every row the transaction had written so far, and a
  // plan cached while the table was empty scanned it for every previous version).
  it('single-row INSERTs in one transaction, streams of ten versions, read as much for the second N rows as for the first', async () => {
    const rows = 300;
    // A store the planner knows to be empty (as autovacuum leaves a new one): the plans the
    // triggers cache while it is tiny must still use the indexes once it has grown.
    await server.pool.query('vacuum analyze projd.events');
    const counts = await withClients(1, async (client) => {
      await client.query('begin');
      try {
        const before = await tuplesRead(client);
        for (let i = 0; i < rows; i++) await append(client, `import-${Math.floor(i / 10)}`, (i % 10) + 1);
        const half = await tuplesRead(client);
        for (let i = rows; i < 2 * rows; i++) await append(client, `import-${Math.floor(i / 10)}`, (i % 10) + 1);
        const after = await tuplesRead(client);
        return { first: half - before, second: after - half };
      } finally {
        await client.query('rollback');
      }
    });
    // Before migration 0004: 85,350 for the first 300 rows, 256,350 for the next 300.
    expect(counts.second).toBeLessThanOrEqual(counts.first + 5);
    expect(counts.second).toBeLessThanOrEqual(2 * rows);
  });

  it('a transaction of its own per row reads a constant per row, however large the store', async () => {
    await server.pool.query(`
      insert into projd.events (stream_id, stream_version, type, data)
      select 'bulk-' || i, 1, 't', '{}' from generate_series(1, 3000) i`);
    await server.pool.query('analyze projd.events'); // as autovacuum would: the planner knows the table is large
    const perTransaction = await withClients(1, async (client) => {
      const read: number[] = [];
      // More than 5: from the sixth run on, PL/pgSQL may use a generic plan, which knows no bounds.
      for (let i = 1; i <= 10; i++) {
        await client.query('begin');
        const before = await tuplesRead(client);
        await append(client, `small-${i}`, 1);
        read.push((await tuplesRead(client)) - before);
        await client.query('commit');
      }
      return read;
    });
    expect(Math.max(...perTransaction)).toBeLessThanOrEqual(5);
  });

  it('appending versions of one stream reads one previous version per row', async () => {
    const rows = 300;
    const counts = await withClients(1, async (client) => {
      await client.query('begin');
      try {
        const before = await tuplesRead(client);
        for (let version = 1; version <= rows; version++) await append(client, 'long-stream', version);
        const half = await tuplesRead(client);
        for (let version = rows + 1; version <= 2 * rows; version++) await append(client, 'long-stream', version);
        const after = await tuplesRead(client);
        return { first: half - before, second: after - half };
      } finally {
        await client.query('rollback');
      }
    });
    expect(counts.second).toBeLessThanOrEqual(counts.first + 5);
    expect(counts.second).toBeLessThanOrEqual(3 * rows);
  });
});

describe('the era check', () => {
  it('still refuses appends (55000) once the store holds a transaction id this cluster has not reached', async () => {
    // What a restore into another cluster leaves: a committed row far ahead of this cluster.
    const client = await server.pool.connect();
    try {
      await client.query('begin');
      await client.query('set local session_replication_role = replica');
      await client.query(`
        insert into projd.events (era, transaction_id, stream_id, stream_version, type, data)
        values (0, (pg_current_xact_id()::text::bigint + 1000000)::text::xid8, 'restored', 1, 't', '{}')`);
      await client.query('commit');

      await expect(append(server.pool, 'after-restore', 1)).rejects.toMatchObject({ code: '55000' });
      await client.query('begin');
      await expect(append(client, 'after-restore', 1)).rejects.toMatchObject({ code: '55000' });
      await client.query('rollback');
    } finally {
      await client.query("delete from projd.events where stream_id = 'restored'");
      client.release();
    }
    await append(server.pool, 'after-restore', 1);
  });

  it('never refuses a healthy store while other writers commit around it', async () => {
    // A writer that committed between reading the horizon and probing below it would look like
    // a restored store: the check must read both from one snapshot.
    const refused = await withClients(8, (...clients) =>
      Promise.all(
        clients.map(async (client, writer) => {
          let count = 0;
          for (let i = 0; i < 150; i += 1) {
            await append(client, `busy-${writer}-${i}`, 1).catch((error: { code?: string }) => {
              if (error.code !== '55000') throw error;
              count += 1;
            });
          }
          return count;
        }),
      ),
    );
    expect(refused).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
  });
});

describe('an append whose previous stream version is missing', () => {
  it('is fine when the previous version comes earlier in the same statement', async () => {
    await server.pool.query(
      `insert into projd.events (stream_id, stream_version, type, data)
       values ('one-statement', 1, 't', '{}'), ('one-statement', 2, 't', '{}'), ('one-statement', 3, 't', '{}')`,
    );
    expect(await versionsOf('one-statement')).toEqual([1, 2, 3]);
  });


  it('is refused as a gap, not as retryable: SQLSTATE 23514 naming the stream and the missing version', async () => {
    await append(server.pool, 'gap-1', 1);

    const refused = await append(server.pool, 'gap-1', 3).catch((error: unknown) => error);

    expect(refused).toMatchObject({
      code: '23514',
      constraint: 'events_stream_version_contiguous',
      message: 'projd: stream gap-1 has no version 2, so version 3 cannot be appended',
    });
    expect(await versionsOf('gap-1')).toEqual([1]);
    // What the gap probe inserted was rolled back: the stream goes on at version 2.
    await append(server.pool, 'gap-1', 2);
    await append(server.pool, 'gap-1', 3);
    expect(await versionsOf('gap-1')).toEqual([1, 2, 3]);
  });

  it('is refused as a gap when the stream does not exist at all', async () => {
    await expect(append(server.pool, 'gap-none', 2)).rejects.toMatchObject({
      code: '23514',
      message: 'projd: stream gap-none has no version 1, so version 2 cannot be appended',
    });
  });

  it('waits for a writer holding that version uncommitted, and is retryable (40001) once it commits', async () => {
    await append(server.pool, 'race-commit', 1);
    await withClients(2, async (a, b) => {
      await a.query('begin');
      await append(a, 'race-commit', 2);
      const appending = append(b, 'race-commit', 3).then(
        () => ({ ok: true as const }),
        (error: unknown) => ({ ok: false as const, error }),
      );
      await waitUntilBlocked(b);
      await a.query('commit');

      const outcome = await appending;
      expect(outcome).toMatchObject({
        ok: false,
        error: { code: '40001', message: expect.stringMatching(/^projd: stream race-commit version 2 .*retry the append$/) },
      });
      // The retry, in a new transaction, goes through.
      await append(b, 'race-commit', 3);
    });
    expect(await versionsOf('race-commit')).toEqual([1, 2, 3]);
  });

  it('waits for a writer holding that version uncommitted, and is a gap (23514) once it rolls back', async () => {
    await append(server.pool, 'race-rollback', 1);
    await withClients(2, async (a, b) => {
      await a.query('begin');
      await append(a, 'race-rollback', 2);
      const appending = append(b, 'race-rollback', 3).then(
        () => ({ ok: true as const }),
        (error: unknown) => ({ ok: false as const, error }),
      );
      await waitUntilBlocked(b);
      await a.query('rollback');

      expect(await appending).toMatchObject({
        ok: false,
        error: { code: '23514', message: 'projd: stream race-rollback has no version 2, so version 3 cannot be appended' },
      });
    });
    expect(await versionsOf('race-rollback')).toEqual([1]);
  });
});

describe('two writers racing for a stream', () => {
  it('appending the same version: one commits, the other gets a unique violation (23505)', async () => {
    await append(server.pool, 'same-version', 1);
    await withClients(2, async (a, b) => {
      await a.query('begin');
      await append(a, 'same-version', 2);
      const appending = append(b, 'same-version', 2).then(
        () => ({ ok: true as const }),
        (error: unknown) => ({ ok: false as const, error }),
      );
      await waitUntilBlocked(b);
      await a.query('commit');
      expect(await appending).toMatchObject({ ok: false, error: { code: '23505' } });
    });
    expect(await versionsOf('same-version')).toEqual([1, 2]);
  });

  it('a previous version written by a later transaction is retryable (40001)', async () => {
    await append(server.pool, 'later', 1);
    await withClients(2, async (early, late) => {
      await early.query('begin');
      await early.query('select pg_current_xact_id()'); // the earlier transaction id
      await late.query('begin');
      await append(late, 'later', 2);
      await late.query('commit');

      await expect(append(early, 'later', 3)).rejects.toMatchObject({
        code: '40001',
        message: 'projd: stream later version 2 was written by a later transaction; retry the append',
      });
      await early.query('rollback');
    });
    expect(await versionsOf('later')).toEqual([1, 2]);
  });
});
