// The loop written first and regretted later: one transaction per event. Read the next event,
// apply it, move the checkpoint, commit; five round trips and a WAL flush per event. It applies
// at most `limit` events (--naive-events), so that it does not dominate the run's time.

import { connect } from '../database.js';
import { applyEvent, statementsFor } from '../readModel.js';
import { readCheckpoint, resetLoop, storeCheckpoint } from './batchedLoop.js';

const NAME = 'naive';

const readNextSql = /* sql */ `
  select e.position::text as position, e.stream_id, e.type, e.data
    from projd.events e
   where e.position > $1
   order by e.position
   limit 1`;

export default {
  key: 'naiveLoop',
  label: 'naive per-event loop',
  table: 'bench_balances_naive',
  async run({ url, admin, table, limit }) {
    await resetLoop(admin, { name: NAME, table });
    const statements = statementsFor(table);
    const client = await connect(url);
    try {
      const started = performance.now();
      let position = await readCheckpoint(client, NAME);
      for (let applied = 0; applied < limit; applied++) {
        await client.query('begin');
        const { rows: [event] } = await client.query(readNextSql, [position]);
        if (!event) {
          await client.query('commit');
          break;
        }
        await applyEvent(client, statements, event);
        await storeCheckpoint(client, NAME, event.position);
        await client.query('commit');
        position = event.position;
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
