import { describe, expect, it } from 'vitest';
import { readBatch } from '../../src/store/readBatch.js';
import { readEvent } from '../../src/store/readEvent.js';
import { START } from '../../src/store/position.js';
import { createTestDatabase } from '../helpers/database.js';
import { untilBelowGate } from '../helpers/snapshotGate.js';

const db = await createTestDatabase();

// Times with sub-millisecond digits, in other zones, before the epoch and at a leap day's end.
const TIMES = [
  '2024-02-29 23:59:59.9995+05:30',
  '1999-12-31 00:00:00.123456+00',
  '1969-07-20 20:17:40.987654+00',
  '2038-01-19 03:14:08.000001-08',
  '2026-11-29 12:00:00+00',
];

describe("an event's createdAt", () => {
  it('is the stored time to the millisecond, as pg reads a timestamptz, in batches and alone', async () => {
    for (const [index, time] of TIMES.entries()) {
      await db.pool.query(
        `insert into projd.events (stream_id, stream_version, type, data, created_at) values ($1, 1, 'clock.ticked', '{}', $2)`,
        [`clock-${index}`, time],
      );
    }
    const { rows } = await db.pool.query<{ created_at: Date }>('select created_at from projd.events order by position');
    const expected = rows.map((row) => row.created_at.getTime());
    await untilBelowGate(db.pool);

    const batch = await readBatch(db.pool, { after: START, eventTypes: ['clock.ticked'], limit: 100 });
    expect(batch.events.map((event) => event.createdAt.getTime())).toEqual(expected);
    expect(batch.events.every((event) => event.createdAt instanceof Date)).toBe(true);
    const alone = await readEvent(db.pool, batch.events[0]!.position);
    expect(alone!.event.createdAt.getTime()).toBe(expected[0]);
  });
});
