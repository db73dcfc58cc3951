// projd against itself: handlers' statements unprepared, then prepared, on one store, in three
// interleaved rounds, so the machine's drift falls on both alike. Usage: node bench/abPrepared.js [events]
import { openDatabase, connect } from './database.js';
import { createStore } from './store.js';
import { benchConfig } from './config.js';
import { balancesProjection, startApp, waitForCatchUp, PROJECTION_NAME } from './contenders/projd.js';
import { dropTable } from './readModel.js';
import { cleanUp } from './cleanup.js';
const events = Number(process.argv[2] ?? 100000);
const db = await openDatabase({ progress: () => {} });
const admin = await connect(db.url);
try {
  await createStore(admin, await benchConfig(db.url, { batchSize: 1000 }), { events, streams: 10000 });
  for (let round = 1; round <= 3; round++) {
    for (const prepared of [false, true]) {
      const table = 'ab_balances';
      await dropTable(admin, table);
      await admin.query('delete from projd.checkpoints where projection = $1', [PROJECTION_NAME]);
      await admin.query('checkpoint');
      const base = await benchConfig(db.url, { batchSize: 1000 });
      const config = { ...base, database: { ...base.database, preparedStatements: prepared } };
      const { app, stop } = startApp(config, balancesProjection({ table }));
      const t = performance.now();
      await app.start(); await waitForCatchUp(app);
      const s = (performance.now() - t) / 1000;
      await stop();
      console.log(`round ${round} prepared=${prepared}: ${Math.round(events / s)} events/s`);
    }
  }
} finally { await admin.end(); await cleanUp(); }
