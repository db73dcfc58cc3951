// projd with the same awaited per-event handlers as the `projd` contender, split into four
// parts (`partitions: 4`): one runner per part over the daemon's pool, so that the round trips
// of one part's handlers overlap those of the others.

import { benchConfig } from '../config.js';
import { dropTable } from '../readModel.js';
import { balancesProjection, startApp, waitForCatchUp } from './projd.js';

const PARTITIONS = 4;
const NAME = 'bench_balances_parts';

export default {
  key: 'projdPartitions',
  label: (options) => `projd, ${PARTITIONS} partitions (batch ${options.batchSize})`,
  table: 'bench_balances_projd_parts',
  async run({ url, admin, table, batchSize }) {
    await dropTable(admin, table);
    await admin.query('delete from projd.checkpoints where projection = $1', [NAME]);
    const config = await benchConfig(url, { batchSize });
    const { app, stop } = startApp(config, balancesProjection({ table, name: NAME, partitions: PARTITIONS }));
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
