// The best batch loop a team writes by hand: in one transaction, read the next batch in position
// order after its own checkpoint, reduce it in JavaScript per account (balance delta, owner, last
// position), write it with one `insert … select from unnest(…) on conflict … do update`, move the
// checkpoint, commit. Three round trips per batch besides begin and commit, whatever its size.
// Position order is only safe because nothing writes to the store while it runs (see batchedLoop.js).

import { connect } from '../database.js';
import { reduceBalances, unnestUpsertSql } from '../readModel.js';
import { readBatchSql, readCheckpoint, resetLoop, storeCheckpoint } from './batchedLoop.js';

const NAME = 'unnest';

/** A row of the store as the reduction reads it. */
const fromRow = (row) => ({ streamId: row.stream_id, type: row.type, data: row.data, position: row.position });

export default {
  key: 'unnestLoop',
  label: 'hand-written unnest loop',
  table: 'bench_balances_unnest',
  async run({ url, admin, table, batchSize }) {
    await resetLoop(admin, { name: NAME, table });
    const upsert = unnestUpsertSql(table);
    const client = await connect(url);
    try {
      const started = performance.now();
      let position = await readCheckpoint(client, NAME);
      for (;;) {
        await client.query('begin');
        const { rows: events } = await client.query(readBatchSql, [position, batchSize]);
        if (events.length > 0) {
          await client.query(upsert, reduceBalances(events, fromRow));
          position = events.at(-1).position;
          await storeCheckpoint(client, NAME, position);
        }
        await client.query('commit');
        if (events.length < batchSize) break;
      }
      return { seconds: (performance.now() - started) / 1000 };
    } catch (error) {
      await client.query('rollback').catch(() => {});
      throw error;
    } finally {
      await client.end().catch(() => {});
    }
  },
};
