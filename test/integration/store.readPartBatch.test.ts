import { describe, expect, it } from 'vitest';
import { countApplied } from '../../src/store/countEvents.js';
import { readBatch, readBatchSql, readPartBatchSql } from '../../src/store/readBatch.js';
import { positionParams, START } from '../../src/store/position.js';
import { createTestDatabase } from '../helpers/database.js';
import { untilBelowGate } from '../helpers/snapshotGate.js';
import { appendLedgerEvents } from '../helpers/ledger.js';

const db = await createTestDatabase();
const eventTypes = ['account.credited', 'account.debited'];

describe('readBatch of one part', () => {
  it('reads exactly the events of its part’s streams, in delivery order, and scans as far as the whole', async () => {
    await appendLedgerEvents(db.pool, { count: 600, streams: 30 });
    await untilBelowGate(db.pool);
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

describe('countApplied of one part', () => {
  it('counts the part’s own events up to the part’s own checkpoint', async () => {
    // Reuses the events appended above. Part 0 of 2 has passed the first 300 events in delivery
    // order, part 1 none: only part 0's events among those 300 are applied.
    const { rows } = await db.pool.query<{ era: number; transaction_id: string; position: string; part0: string }>(`
      with ordered as (
        select era, transaction_id, position, stream_id, row_number() over (order by era, transaction_id, position) as n
          from projd.events)
      select era, transaction_id::text, position::text,
             (select count(*) from ordered o where o.n <= 300 and projd.stream_part(o.stream_id, 2) = 0)::text as part0
        from ordered where n = 300`);
    const at = rows[0]!;
    await db.pool.query(
      `insert into projd.checkpoints (projection, part, parts, version, era, transaction_id, position)
       values ('counted', 0, 2, 1, $1, $2::xid8, $3), ('counted', 1, 2, 1, 0, '0', 0)`,
      [at.era, at.transaction_id, at.position],
    );
    const part0 = await countApplied(db.pool, 'counted', { eventTypes, after: START, part: { index: 0, count: 2 } });
    const part1 = await countApplied(db.pool, 'counted', { eventTypes, after: START, part: { index: 1, count: 2 } });
    expect(part0).toMatchObject({ count: Number(at.part0), checkpoint: { position: BigInt(at.position) } });
    expect(Number(at.part0)).toBeGreaterThan(100);
    expect(Number(at.part0)).toBeLessThan(200);
    expect(part1).toMatchObject({ count: 0, checkpoint: { position: 0n } });
  });
});
