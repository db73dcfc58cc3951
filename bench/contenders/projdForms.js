// projd's faster forms of the same balances projection, each a contender: the SQL batch handler,
// the module batch handler, per-event YAML statements (sent in pipeline) and the awaited
// per-event handlers split in 4 partitions. A form this build of projd does not offer yet is
// reported as `n/a (needs …)` rather than run.

import { balancesYaml } from '../readModel.js';
import { balancesDefinition, defineIfSupported, projectionName, projectionsFolder, timeCatchUp } from './projd.js';

/** A contender of one module-defined form; `needs` names what it waits for, `carries` checks the compiled projection. */
function formContender({ key, label, table, form, partitions, needs, carries, needsSql }) {
  const define = (name) => defineIfSupported(balancesDefinition({ name, table, form, partitions }), { needs, carries });
  return {
    key,
    label,
    table,
    async unavailable({ admin }) {
      const { unavailable } = define(projectionName(key, 0));
      if (unavailable) return unavailable;
      if (needsSql) {
        const { rows: [row] } = await admin.query(`select ${needsSql.probe} as present`);
        if (!row.present) return `needs ${needsSql.what}`;
      }
      return undefined;
    },
    run: ({ round, ...context }) => timeCatchUp({ ...context, projection: define(projectionName(key, round)).projection }),
  };
}

export const projdSqlBatch = formContender({
  key: 'projdSqlBatch',
  label: 'projd SQL batch handler',
  table: 'bench_balances_sql_batch',
  form: 'sqlBatch',
  needs: "the 'batch' key (SQL batch handlers)",
  carries: (projection) => Array.isArray(projection.batch) && projection.batch.length > 0,
  needsSql: { probe: "to_regprocedure('projd.batch_events()') is not null", what: 'projd.batch_events() (migration 0008)' },
});

export const projdModuleBatch = formContender({
  key: 'projdModuleBatch',
  label: 'projd module handleBatch (unnest)',
  table: 'bench_balances_module_batch',
  form: 'moduleBatch',
  needs: "the 'handleBatch' key (module batch handlers)",
  carries: (projection) => typeof projection.handleBatch === 'function',
});

export const projdPartitions = formContender({
  key: 'projdPartitions4',
  label: 'projd per-event, awaited, 4 partitions',
  table: 'bench_balances_partitions',
  form: 'perEvent',
  partitions: 4,
  needs: "the 'partitions' key",
  carries: (projection) => projection.partitions === 4,
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
