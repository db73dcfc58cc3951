import { describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/database.js';

const db = await createTestDatabase();

describe('projd.stream_part', () => {
  it('never returns a part outside 0..parts-1, for hashes with the top bit set too', async () => {
    // md5 prefixes from 0x80000000 up read as negative through a signed 32-bit cast.
    const { rows } = await db.pool.query<{ min: number; max: number; high_bit: string }>(
      `select min(p) as min, max(p) as max,
              count(*) filter (where left(md5(s), 1) >= '8')::text as high_bit
         from (select 'stream-' || i as s from generate_series(1, 20000) i) streams,
              generate_series(1, 256) parts,
              lateral (select projd.stream_part(s, parts) as p) part
        where parts in (1, 2, 3, 4, 7, 16, 256)`,
    );
    expect(Number(rows[0]!.high_bit)).toBeGreaterThan(0);
    expect(rows[0]!.min).toBe(0);
    expect(rows[0]!.max).toBe(255);
  });

  it('spreads streams evenly over the parts', async () => {
    for (const parts of [2, 4, 16]) {
      const { rows } = await db.pool.query<{ part: number; n: string }>(
        `select projd.stream_part('account-' || i, $1) as part, count(*) as n
           from generate_series(1, 40000) i group by 1 order by 1`,
        [parts],
      );
      expect(rows.map((row) => row.part)).toEqual([...Array(parts).keys()]);
      const expected = 40_000 / parts;
      for (const row of rows) {
        // Binomial spread: a few standard deviations, far inside ±10 %.
        expect(Math.abs(Number(row.n) - expected) / expected, `part ${row.part} of ${parts}`).toBeLessThan(0.1);
      }
    }
  });

  it('is the same for a stream however often it is asked', async () => {
    const { rows } = await db.pool.query<{ part: number }>(`select projd.stream_part('account-42', 4) as part`);
    const { rows: again } = await db.pool.query<{ part: number }>(`select projd.stream_part('account-42', 4) as part`);
    expect(again[0]!.part).toBe(rows[0]!.part);
  });
});
