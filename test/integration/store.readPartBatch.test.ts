import { describe, expect, it } from 'vitest';
import { readBatch, readBatchSql, readPartBatchSql } from '../../src/store/readBatch.js';
import { positionParams, START } from '../../src/store/position.js';
import { createTestDatabase } from '../helpers/database.js';
import { appendLedgerEvents } from '../helpers/ledger.js';

const db = await createTestDatabase();
const eventTypes = ['account.credited', 'account.debited'];

describe('readBatch of one part', () => {
  it('reads exactly the events of its part’s streams, in delivery order, and scans as far as the whole', async () => {
    await appendLedgerEvents(db.pool, { count: 600, streams: 30 });
    const whole = await readBatch(db.pool, { after: START, eventTypes, limit: 10_000 });
    const { rows } = await db.pool.query<{ position: string; part: number }>(
      'select position::text, projd.stream_part(stream_id, 4) as part from projd.events',
    );
    const partOf = new Map(rows.map((row) => [row.position, row.part]));

    const seen: string[] = [];
    for (const index of [0, 1, 2, 3]) {
      const batch = await readBatch(db.pool, { after: START, eventTypes, limit: 10_000, part: { index, count: 4 } });
      const positions = batch.events.map((event) => String(event.position));
      expect(positions.length).toBeGreaterThan(0);
      expect(positions.every((position) => partOf.get(position) === index)).toBe(true);
      // In delivery order: the whole batch's order, restricted to this part.
      const inWholeOrder = whole.events.map((event) => String(event.position)).filter((position) => partOf.get(position) === index);
      expect(positions).toEqual(inWholeOrder);
      expect(batch.scannedTo).toEqual(whole.scannedTo);
      seen.push(...positions);
    }
    expect(seen.sort()).toEqual(whole.events.map((event) => String(event.position)).sort());
  });

  it('leaves a projection that is not split reading without the hash, and a part through the delivery-order index', async () => {
    expect(readBatchSql).not.toContain('stream_part');
    const params = [...positionParams(START), eventTypes, [], 100];
    const client = await db.pool.connect();
    try {
      await client.query('set enable_seqscan = off'); // a small table: the index is what matters, not its cost
      const { rows } = await client.query<{ 'QUERY PLAN': string }>(`explain ${readPartBatchSql}`, [...params, 4, 1]);
      const plan = rows.map((row) => row['QUERY PLAN']).join('\n');
      expect(plan).toContain('events_delivery_order_idx');
    } finally {
      await client.query('reset enable_seqscan');
      client.release();
    }
  });
});
