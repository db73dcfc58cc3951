// The first loop of the failure-isolation comparison: the batched loop as it is, each event
// applied in the batch's transaction with nothing around it. The same code as the hand-written
// batched loop, run again: the gap between the two is run-to-run noise.

import { runBatchedLoop } from './batchedLoop.js';

export default {
  key: 'plainLoop',
  label: 'plain per-event loop',
  table: 'bench_balances_plain',
  run: (context) => runBatchedLoop({ ...context, name: 'plain', savepoints: false }),
};
