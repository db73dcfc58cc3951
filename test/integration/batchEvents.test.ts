import { describe, expect, it } from 'vitest';
import { setBatchEvents } from '../../src/store/batchEvents.js';
import { readBatch } from '../../src/store/readBatch.js';
import { readBatchBounds } from '../../src/store/readBatchBounds.js';
import { START, type Position } from '../../src/store/position.js';
import { appendAccountEvents } from '../helpers/accounts.js';
import { createTestDatabase } from '../helpers/database.js';
import { untilBelowGate } from '../helpers/snapshotGate.js';

// projd.batch_events() (migration 0008) and the bounds the SQL batch form reads instead of rows.
const db = await createTestDatabase();
await appendAccountEvents(db.pool, { count: 20_000, streams: 200 });
await untilBelowGate(db.pool);
await db.pool.query('analyze projd.events');

/** Runs `sql` in a transaction whose batch is `scope`, and returns its rows. */
async function inBatch<Row>(scope: Parameters<typeof setBatchEvents>[1], sql: string): Promise<Row[]> {
  const client = await db.pool.connect();
  try {
    await client.query('begin');
    await setBatchEvents(client, scope);
    const { rows } = await client.query(sql);
    await client.query('commit');
    return rows as Row[];
  } finally {
    client.release();
  }
}

describe('projd.batch_events()', () => {
  it('returns the batch readBatch reads, in delivery order, and nothing outside a batch', async () => {
    const eventTypes = ['account.debited'];
    const after: Position = (await readBatch(db.pool, { after: START, eventTypes, limit: 100 })).scannedTo!;
    const batch = await readBatch(db.pool, { after, eventTypes, limit: 250 });
    const bounds = await readBatchBounds(db.pool, { after, eventTypes, limit: 250 });
    expect(bounds).toEqual({
      count: 250,
      firstPosition: batch.events[0]!.position,
      lastPosition: batch.events.at(-1)!.position,
      scannedTo: batch.scannedTo,
      full: true,
      heldBack: false,
    });

    const client = await db.pool.connect();
    try {
      await client.query('begin');
      await setBatchEvents(client, { after, through: bounds.scannedTo!, eventTypes });
      const { rows } = await client.query<{ position: string }>('select position::text from projd.batch_events()');
      expect(rows.map((row) => BigInt(row.position))).toEqual(batch.events.map((event) => event.position));
      await client.query('commit');
      // Set once, the settings read '' after the transaction: still no rows.
      const { rows: outside } = await client.query('select * from projd.batch_events()');
      expect(outside).toEqual([]);
    } finally {
      client.release();
    }
    expect((await db.pool.query('select * from projd.batch_events()')).rows).toEqual([]);
  });

  it('is pointed at the batch by the statement that reads its bounds, whole or one part, full or not', async () => {
    const after: Position = (await readBatch(db.pool, { after: START, eventTypes: ['*'], limit: 3000 })).scannedTo!;
    const cases = [
      { eventTypes: ['account.credited'], limit: 400 },
      { eventTypes: ['account.debited'], limit: 100_000 }, // not full: bounded by the scan's end
      { eventTypes: ['account.*'], limit: 300, part: { index: 3, count: 4 } },
      { eventTypes: ['account.*'], limit: 100_000, part: { index: 1, count: 4 } },
    ];
    for (const { eventTypes, limit, part } of cases) {
      const batch = await readBatch(db.pool, { after, eventTypes, limit, part });
      expect(batch.events.length).toBeGreaterThan(50);
      const client = await db.pool.connect();
      try {
        await client.query('begin');
        const bounds = await readBatchBounds(client, { after, eventTypes, limit, part });
        expect(bounds.full).toBe(batch.full);
        const { rows } = await client.query<{ position: string }>('select position::text from projd.batch_events()');
        expect(rows.map((row) => BigInt(row.position))).toEqual(batch.events.map((event) => event.position));
        await client.query('commit');
      } finally {
        client.release();
      }
    }
  });

  it('takes prefixes and one part of a partitioned projection', async () => {
    const through = (await readBatchBounds(db.pool, { after: START, eventTypes: ['*'], limit: 1000 })).scannedTo!;
    const [{ n }] = (await inBatch<{ n: number }>(
      { after: START, through, eventTypes: ['account.*'], part: { part: 2, parts: 4 } },
      'select count(*)::integer as n from projd.batch_events() where projd.stream_part(stream_id, 4) = 2',
    )) as [{ n: number }];
    const [{ all }] = (await inBatch<{ all: number }>(
      { after: START, through, eventTypes: ['account.*'], part: { part: 2, parts: 4 } },
      'select count(*)::integer as all from projd.batch_events()',
    )) as [{ all: number }];
    expect(all).toBe(n);
    expect(all).toBeGreaterThan(100);
    expect(all).toBeLessThan(500);
  });

  it('is inlined into the caller and reads the delivery-order index, not the whole table', async () => {
    const through = (await readBatchBounds(db.pool, { after: START, eventTypes: ['*'], limit: 1000 })).scannedTo!;
    const plan = await inBatch<{ 'QUERY PLAN': string }>(
      { after: START, through, eventTypes: ['account.credited'] },
      'explain select stream_id, count(*) from projd.batch_events() group by stream_id',
    );
    const text = plan.map((row) => row['QUERY PLAN']).join('\n');
    // A plain or a bitmap index scan, whichever the planner estimates cheaper for the bounds.
    expect(text).toMatch(/Index Scan (using|on) events_delivery_order_idx/);
    expect(text).not.toContain('Seq Scan');
    expect(text).not.toContain('Function Scan');
  });
});
