// Ad-hoc: projd vs projd with 4 partitions, alternated, on one store.
import { cleanUp, onCleanup } from './cleanup.js';
import { benchConfig } from './config.js';
import projd from './contenders/projd.js';
import projdPartitions from './contenders/projdPartitions.js';
import { connect, openDatabase } from './database.js';
import { verifyReadModel } from './readModel.js';
import { createStore } from './store.js';
const progress = (line) => process.stderr.write(`${line}\n`);
const events = Number(process.env.EVENTS ?? 100000);
const rounds = Number(process.env.ROUNDS ?? 3);
try {
  const database = await openDatabase({ databaseUrl: undefined, progress });
  const admin = await connect(database.url);
  onCleanup(() => admin.end());
  const config = await benchConfig(database.url, { batchSize: 1000 });
  const store = await createStore(admin, config, { events, streams: 10000 });
  for (let round = 0; round < rounds; round++) {
    for (const contender of [projd, projdPartitions]) {
      await admin.query('checkpoint');
      const { seconds } = await contender.run({ url: database.url, admin, table: contender.table, batchSize: 1000, limit: events, upTo: store.headPosition });
      await verifyReadModel(admin, contender.table, { upTo: store.headPosition, totals: store.totals });
      progress(`${contender.key}: ${Math.round(store.events / seconds)} events/s (load ${(await import('node:os')).loadavg()[0].toFixed(2)})`);
    }
  }
} finally {
  await cleanUp();
}
