// The second loop of the failure-isolation comparison: the batched loop with SAVEPOINT before
// and RELEASE after each event, two more round trips per event. Its gap to the plain loop is
// the happy-path price of isolating failures event by event.

import { runBatchedLoop } from './batchedLoop.js';

export default {
  key: 'savepointLoop',
  label: 'savepoint per event',
  table: 'bench_balances_savepoint',
  run: (context) => runBatchedLoop({ ...context, name: 'savepoint', savepoints: true }),
};
