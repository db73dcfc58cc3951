// The ceiling: the whole read model in one INSERT … SELECT … GROUP BY over the events table.
// No per-event work, no checkpoint, no ordering guarantees beyond what the aggregate needs.

import pg from 'pg';
import { connect } from '../database.js';
import { createTableSql, dropTable, expectedSql } from '../readModel.js';

export default {
  key: 'setBased',
  label: 'set-based SQL (limit)',
  table: 'bench_balances_set',
  async run({ url, table, upTo }) {
    const client = await connect(url);
    try {
      await dropTable(client, table);
      await client.query(createTableSql(table));
      const started = performance.now();
      await client.query(
        `insert into ${pg.escapeIdentifier(table)} (account_id, owner, balance, updated_position) ${expectedSql}`,
        [upTo],
      );
      return { seconds: (performance.now() - started) / 1000 };
    } finally {
      await client.end().catch(() => {});
    }
  },
};
