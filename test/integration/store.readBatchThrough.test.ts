import { describe, expect, it } from 'vitest';
import { comparePositions, START, type Position } from '../../src/store/position.js';
import { readBatch } from '../../src/store/readBatch.js';
import { readBatchBounds } from '../../src/store/readBatchBounds.js';
import { createTestDatabase } from '../helpers/database.js';
import { appendLedgerEvents } from '../helpers/ledger.js';
import { untilBelowGate } from '../helpers/snapshotGate.js';

// A scratch build reads the store up to a bound (the live checkpoint), never past it, whatever
// lies beyond below the gate, in both batch reads, for a whole projection and for a part.

const db = await createTestDatabase();
const eventTypes = ['account.credited', 'account.debited'];

/** Every event in delivery order. */
async function deliveryOrder(): Promise<Position[]> {
  const { rows } = await db.pool.query<{ era: number; transaction_id: string; position: string }>(
    'select era, transaction_id::text, position::text from projd.events order by era, transaction_id, position',
  );
  return rows.map((row) => ({ era: row.era, transactionId: BigInt(row.transaction_id), position: BigInt(row.position) }));
}

describe('batch reads with an end (through)', () => {
  it('read nothing past it, batch after batch, and end exactly on it', async () => {
    await appendLedgerEvents(db.pool, { count: 200, streams: 12 });
    await appendLedgerEvents(db.pool, { count: 100, streams: 12 });
    await untilBelowGate(db.pool);
    const all = await deliveryOrder();
    const through = all[149]!; // mid-way, with 150 events after it below the gate

    for (const part of [undefined, { index: 1, count: 3 }]) {
      let after = START;
      const read: bigint[] = [];
      for (;;) {
        const batch = await readBatch(db.pool, { after, through, eventTypes, limit: 16, part });
        const bounds = await readBatchBounds(db.pool, { after, through, eventTypes, limit: 16, part });
        expect(bounds.count).toBe(batch.events.length);
        expect(bounds.scannedTo).toEqual(batch.scannedTo);
        read.push(...batch.events.map((event) => event.position));
        if (!batch.scannedTo) break;
        expect(comparePositions(batch.scannedTo, through)).toBeLessThanOrEqual(0);
        after = batch.scannedTo;
        if (!batch.full) break;
      }
      expect(after).toEqual(through);
      const unbounded = await readBatch(db.pool, { after: START, eventTypes, limit: 10_000, part });
      const upToThrough = unbounded.events.filter((event) => event.position <= through.position).map((event) => event.position);
      expect(read).toEqual(upToThrough);
      expect(read.length).toBeLessThan(unbounded.events.length);
    }
  });
});
