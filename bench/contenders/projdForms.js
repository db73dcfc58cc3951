// projd's faster forms of the same balances projection, each a contender: the SQL batch handler,
// the module batch handler, per-event YAML statements (sent in pipeline) and the awaited
// per-event handlers split in 4 partitions.

import { balancesYaml, upcastBatchYaml } from '../readModel.js';
import { defineProjection } from '../../dist/index.js';
import { balancesDefinition, projectionName, projectionsFolder, timeCatchUp } from './projd.js';

/** A contender of one module-defined form of the balances projection. */
function formContender({ key, label, table, form, partitions }) {
  return {
    key,
    label,
    table,
    run: ({ round, ...context }) => {
      const projection = defineProjection(balancesDefinition({ name: projectionName(key, round), table, form, partitions }));
      return timeCatchUp({ ...context, projection });
    },
  };
}

export const projdSqlBatch = formContender({
  key: 'projdSqlBatch',
  label: 'projd SQL batch handler',
  table: 'bench_balances_sql_batch',
  form: 'sqlBatch',
});

export const projdModuleBatch = formContender({
  key: 'projdModuleBatch',
  label: 'projd module handleBatch (unnest)',
  table: 'bench_balances_module_batch',
  form: 'moduleBatch',
});

export const projdPartitions = formContender({
  key: 'projdPartitions4',
  label: 'projd per-event, awaited, 4 partitions',
  table: 'bench_balances_partitions',
  form: 'perEvent',
  partitions: 4,
});

/**
 * The balances projection as a user writes it in YAML, in a projections folder of its own,
 * loaded by projd's loader as `projd run` loads it. YAML per-event statements await nothing,
 * so projd sends them in pipeline where it can.
 */
export const projdYaml = {
  key: 'projdYaml',
  label: 'projd YAML per-event (pipelined)',
  table: 'bench_balances_yaml',
  async run({ round, url, admin, table, batchSize }) {
    const name = projectionName('projdYaml', round);
    const dir = await projectionsFolder({ [`${name}.yaml`]: balancesYaml({ name, table }) });
    return timeCatchUp({ url, admin, table, batchSize, dir });
  },
};

/** The SQL batch handler again, in YAML, with every event lifted by an upcaster on the way. */
export const projdSqlBatchUpcast = {
  key: 'projdSqlBatchUpcast',
  label: 'projd SQL batch handler, every event upcast',
  table: 'bench_balances_sql_batch_upcast',
  async run({ round, url, admin, table, batchSize }) {
    const name = projectionName('projdSqlBatchUpcast', round);
    const dir = await projectionsFolder({ [`${name}.yaml`]: upcastBatchYaml({ name, table }) });
    return timeCatchUp({ url, admin, table, batchSize, dir });
  },
};
