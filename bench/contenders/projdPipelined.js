// projd with the balances projection written in YAML: its per-event handlers queue their
// statements without awaiting them, so a batch sends them in pipeline. Same read model, same
// default configuration, timed from start() to caughtUp(), as the awaited `projd` contender.

import pg from 'pg';
import { compileYamlProjection } from '../../dist/projection/compileYamlProjection.js';
import { benchConfig } from '../config.js';
import { CREDITED, DEBITED, OPENED, createTableSql, dropTable } from '../readModel.js';
import { startApp, waitForCatchUp } from './projd.js';

const PROJECTION_NAME = 'bench_balances_pipelined';

/** The balances projection as YAML over `table`: the same upserts, with the event's fields bound. */
export function balancesYaml(table) {
  const t = pg.escapeIdentifier(table);
  const amount = (sign) => `insert into ${t} (account_id, balance, updated_position)
      values (:streamId, ${sign}(:data->>'amount')::bigint, :position)
      on conflict (account_id) do update
        set balance = ${t}.balance + excluded.balance, updated_position = excluded.updated_position`;
  const opened = `insert into ${t} (account_id, owner, updated_position) values (:streamId, :data->>'owner', :position)
      on conflict (account_id) do update set owner = excluded.owner, updated_position = excluded.updated_position`;
  return [
    `name: ${PROJECTION_NAME}`,
    'version: 1',
    `setup: ${JSON.stringify(createTableSql(table))}`,
    `reset: ${JSON.stringify(`truncate ${t}`)}`,
    'handlers:',
    `  ${OPENED}: ${JSON.stringify(opened)}`,
    `  ${CREDITED}: ${JSON.stringify(amount(''))}`,
    `  ${DEBITED}: ${JSON.stringify(amount('-'))}`,
  ].join('\n');
}

export default {
  key: 'projdPipelined',
  label: (options) => `projd, pipelined YAML (batch ${options.batchSize})`,
  table: 'bench_balances_pipelined',
  async run({ url, admin, table, batchSize }) {
    await dropTable(admin, table);
    await admin.query('delete from projd.checkpoints where projection = $1', [PROJECTION_NAME]);
    const config = await benchConfig(url, { batchSize });
    const projection = compileYamlProjection(balancesYaml(table), 'bench/balances.yaml');
    const { app, stop } = startApp(config, projection);
    try {
      const started = performance.now();
      await app.start();
      await waitForCatchUp(app);
      return { seconds: (performance.now() - started) / 1000 };
    } finally {
      await stop();
    }
  },
};
