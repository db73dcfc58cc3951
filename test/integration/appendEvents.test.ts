import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents, isVersionConflictError, VersionConflictError, type ExpectedVersion } from '../../src/index.js';
import { startIsolatedPostgres, type IsolatedPostgres } from '../helpers/database.js';
import { waitFor } from '../helpers/waitFor.js';

// appendEvents on a pool (each statement its own transaction) and on a client inside the
// caller's transaction. Its own server: the race cases hold transactions open, and the xmin
// horizon is cluster-wide.
let server: IsolatedPostgres;

beforeAll(async () => {
  server = await startIsolatedPostgres();
});

afterAll(async () => {
  await server?.stop();
});

interface StoredEvent {
  position: string;
  transaction_id: string;
  stream_version: number;
  type: string;
  data: unknown;
  metadata: unknown;
  schema_version: number;
}

async function storedEvents(streamId: string): Promise<StoredEvent[]> {
  const { rows } = await server.pool.query<StoredEvent>(
    `select position::text, transaction_id::text, stream_version, type, data, metadata, schema_version
       from projd.events where stream_id = $1 order by stream_version`,
    [streamId],
  );
  return rows;
}

/** Runs `work` on a client inside a transaction that is rolled back (or committed) afterwards. */
async function inTransaction<T>(end: 'commit' | 'rollback', work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await server.pool.connect();
  try {
    await client.query('begin');
    try {
      return await work(client);
    } finally {
      await client.query(end);
    }
  } finally {
    client.release();
  }
}

/** Resolves once a backend running an append waits on a lock: it has met the other writer's row. */
async function appendWaitingOnLock(): Promise<void> {
  await waitFor(
    async () => {
      const { rows } = await server.pool.query(
        `select 1 from pg_stat_activity where wait_event_type = 'Lock' and query like '%insert into projd.events%'`,
      );
      return rows.length > 0;
    },
    { message: 'an append to wait on the other writer' },
  );
}

/** The outcome of `promise`, handled at once, to be looked at later. */
function settled<T>(promise: Promise<T>): Promise<{ value: T } | { error: unknown }> {
  return promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
}

async function caught(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.fail('expected a rejection'),
    (error: unknown) => error,
  );
}

describe('appendEvents on a pool', () => {
  it('appends in order with consecutive versions, returning positions and the transaction id', async () => {
    const first = await appendEvents(server.pool, 'pool-1', [
      { type: 'account.opened', data: { owner: 'Ada' } },
      { type: 'account.credited', data: { amount: 100 }, metadata: { actor: 'test' }, schemaVersion: 2 },
    ]);
    const second = await appendEvents(server.pool, 'pool-1', [{ type: 'account.debited', data: { amount: 30 } }]);

    const stored = await storedEvents('pool-1');
    expect(stored).toEqual([
      expect.objectContaining({ stream_version: 1, type: 'account.opened', data: { owner: 'Ada' }, metadata: {}, schema_version: 1 }),
      expect.objectContaining({ stream_version: 2, type: 'account.credited', data: { amount: 100 }, metadata: { actor: 'test' }, schema_version: 2 }),
      expect.objectContaining({ stream_version: 3, type: 'account.debited', data: { amount: 30 } }),
    ]);
    expect(first).toEqual({
      positions: [BigInt(stored[0]!.position), BigInt(stored[1]!.position)],
      streamVersions: [1, 2],
      transactionId: BigInt(stored[0]!.transaction_id),
      nextExpectedVersion: 2,
    });
    expect(stored[1]!.transaction_id).toBe(stored[0]!.transaction_id);
    expect(second).toEqual({
      positions: [BigInt(stored[2]!.position)],
      streamVersions: [3],
      transactionId: BigInt(stored[2]!.transaction_id),
      nextExpectedVersion: 3,
    });
  });

  it.each<[string, ExpectedVersion, number]>([
    ['a matching version', 2, 3],
    ["'stream_exists'", 'stream_exists', 3],
    ["'any'", 'any', 3],
  ])('appends to an existing stream with %s', async (_, expectedVersion, next) => {
    const stream = `exists-${String(expectedVersion)}`;
    await appendEvents(server.pool, stream, [{ type: 'a', data: {} }, { type: 'b', data: {} }], { expectedVersion: 'no_stream' });
    const result = await appendEvents(server.pool, stream, [{ type: 'c', data: {} }], { expectedVersion });
    expect(result.nextExpectedVersion).toBe(next);
  });

  it.each<[string, ExpectedVersion, number, string]>([
    ['an older version', 1, 2, "stream 'conflict-1': expected version 1, but it is at version 2"],
    ['a newer version', 5, 2, "stream 'conflict-5': expected version 5, but it is at version 2"],
    ["'no_stream'", 'no_stream', 2, "stream 'conflict-no_stream': expected no events yet, but it is at version 2"],
    ['0', 0, 2, "stream 'conflict-0': expected no events yet, but it is at version 2"],
  ])('refuses %s with a VersionConflictError and writes nothing', async (_, expectedVersion, actual, message) => {
    const stream = `conflict-${String(expectedVersion)}`;
    await appendEvents(server.pool, stream, [{ type: 'a', data: {} }, { type: 'b', data: {} }]);

    const error = await caught(appendEvents(server.pool, stream, [{ type: 'c', data: {} }], { expectedVersion }));

    expect(isVersionConflictError(error)).toBe(true);
    expect(error).toBeInstanceOf(VersionConflictError);
    expect(error).toMatchObject({ code: 'PROJD_VERSION_CONFLICT', streamId: stream, expectedVersion, actualVersion: actual, message });
    expect((await storedEvents(stream)).map((event) => event.type)).toEqual(['a', 'b']);
  });

  it("refuses 'stream_exists' on a stream with no events", async () => {
    const error = await caught(appendEvents(server.pool, 'nothing-yet', [{ type: 'a', data: {} }], { expectedVersion: 'stream_exists' }));
    expect(error).toMatchObject({
      actualVersion: 0,
      message: "stream 'nothing-yet': expected an existing stream, but it has no events",
    });
    expect(await storedEvents('nothing-yet')).toEqual([]);
  });

  it("with 'any', goes on after a writer that took the same version first", async () => {
    await appendEvents(server.pool, 'race-any', [{ type: 'a', data: {} }]);
    const { ours } = await inTransaction('commit', async (other) => {
      await appendEvents(other, 'race-any', [{ type: 'other', data: {} }]); // version 2, not committed yet
      const pending = settled(appendEvents(server.pool, 'race-any', [{ type: 'ours', data: {} }]));
      await appendWaitingOnLock(); // it read version 1 and now waits on the other writer's version 2
      return { ours: pending }; // awaited once the other writer has committed
    });
    expect(await ours).toMatchObject({ value: { streamVersions: [3], nextExpectedVersion: 3 } });
    expect((await storedEvents('race-any')).map((event) => [event.stream_version, event.type])).toEqual([
      [1, 'a'],
      [2, 'other'],
      [3, 'ours'],
    ]);
  });

  it('with a version, reports the version the other writer left', async () => {
    await appendEvents(server.pool, 'race-version', [{ type: 'a', data: {} }]);
    const { ours } = await inTransaction('commit', async (other) => {
      await appendEvents(other, 'race-version', [{ type: 'other', data: {} }, { type: 'other', data: {} }]);
      const pending = settled(appendEvents(server.pool, 'race-version', [{ type: 'ours', data: {} }], { expectedVersion: 1 }));
      await appendWaitingOnLock();
      return { ours: pending };
    });
    expect(await ours).toMatchObject({ error: { code: 'PROJD_VERSION_CONFLICT', expectedVersion: 1, actualVersion: 3 } });
    expect((await storedEvents('race-version')).map((event) => event.type)).toEqual(['a', 'other', 'other']);
  });

  it('refuses an empty list and an event without a type, before touching the database', async () => {
    await expect(appendEvents(server.pool, 'bad', [])).rejects.toThrow("appendEvents: no events to append to stream 'bad'");
    await expect(appendEvents(server.pool, 'bad', [{ type: '', data: {} }])).rejects.toThrow(
      'appendEvents: event 0: type must be a non-empty string',
    );
    await expect(appendEvents(server.pool, 'bad', [{ type: 'a', data: {} }], { expectedVersion: -1 })).rejects.toThrow(TypeError);
    expect(await storedEvents('bad')).toEqual([]);
  });
});

describe("appendEvents inside the caller's transaction", () => {
  it('writes with the transaction, returns its id, and leaves nothing when it rolls back', async () => {
    const { result, current } = await inTransaction('rollback', async (client) => {
      const appended = await appendEvents(client, 'tx-1', [{ type: 'a', data: {} }, { type: 'b', data: {} }]);
      const more = await appendEvents(client, 'tx-1', [{ type: 'c', data: {} }], { expectedVersion: 2 });
      const { rows } = await client.query<{ id: string }>('select pg_current_xact_id()::text as id');
      return { result: [appended, more], current: BigInt(rows[0]!.id) };
    });

    expect(result[0]).toMatchObject({ streamVersions: [1, 2], transactionId: current, nextExpectedVersion: 2 });
    expect(result[1]).toMatchObject({ streamVersions: [3], transactionId: current, nextExpectedVersion: 3 });
    expect(await storedEvents('tx-1')).toEqual([]);
  });

  it('commits with the transaction', async () => {
    const result = await inTransaction('commit', (client) => appendEvents(client, 'tx-2', [{ type: 'a', data: { n: 1 } }]));
    const stored = await storedEvents('tx-2');
    expect(stored).toEqual([expect.objectContaining({ type: 'a', data: { n: 1 } })]);
    expect(result).toEqual({
      positions: [BigInt(stored[0]!.position)],
      streamVersions: [1],
      transactionId: BigInt(stored[0]!.transaction_id),
      nextExpectedVersion: 1,
    });
  });

  it('reports a writer that took the same version first as a conflict, without retrying', async () => {
    await appendEvents(server.pool, 'tx-race', [{ type: 'a', data: {} }]);
    const outcome = await inTransaction('rollback', async (ours) => {
      const { pending } = await inTransaction('commit', async (other) => {
        await appendEvents(other, 'tx-race', [{ type: 'other', data: {} }]);
        const appending = settled(appendEvents(ours, 'tx-race', [{ type: 'ours', data: {} }]));
        await appendWaitingOnLock();
        return { pending: appending };
      });
      return pending;
    });
    expect(outcome).toMatchObject({
      error: { code: 'PROJD_VERSION_CONFLICT', streamId: 'tx-race', expectedVersion: 'any', actualVersion: null },
    });
    expect((outcome as { error: Error }).error.message).toBe(
      "stream 'tx-race': expected any version, but another writer appended to it at the same time",
    );
    expect((await storedEvents('tx-race')).map((event) => event.type)).toEqual(['a', 'other']);
  });
});
