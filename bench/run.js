// `npm run bench`: catch-up throughput of projd and of the loops it replaces, on one store in
// one database, then projd's live latency, then what the store's insert triggers cost a writer.
// Progress goes to stderr, results to stdout.

import os from 'node:os';
import { START_FAILED } from '../scripts/embeddedPostgres.js';
import { cleanUp, onCleanup } from './cleanup.js';
import { benchConfig } from './config.js';
import batchedLoop from './contenders/batchedLoop.js';
import naiveLoop from './contenders/naiveLoop.js';
import plainLoop from './contenders/plainLoop.js';
import projd from './contenders/projd.js';
import { projdModuleBatch, projdPartitions, projdSqlBatch, projdSqlBatchUpcast, projdYaml } from './contenders/projdForms.js';
import savepointLoop from './contenders/savepointLoop.js';
import setBased from './contenders/setBased.js';
import unnestLoop from './contenders/unnestLoop.js';
import { connect, openDatabase } from './database.js';
import { EXAMPLE_TABLES, measureLiveLatency } from './live.js';
import { measuringCores } from './machineCpu.js';
import { measureReplayMemory } from './replayMemory.js';
import { measureSlowNeighbour } from './slowNeighbour.js';
import { measureSmallBatches } from './smallBatches.js';
import { USAGE, parseOptions } from './options.js';
import { verifyReadModel } from './readModel.js';
import { describeMachine, renderJson, renderTable, summarize } from './report.js';
import { createStore, positionOf } from './store.js';
import { measureWritePath } from './writePath.js';

const CONTENDERS = [
  setBased,
  projd,
  projdPartitions,
  projdYaml,
  projdSqlBatch,
  projdSqlBatchUpcast,
  projdModuleBatch,
  unnestLoop,
  batchedLoop,
  naiveLoop,
  plainLoop,
  savepointLoop,
];

const startedAt = performance.now();
const progress = (line) => {
  const elapsed = ((performance.now() - startedAt) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`bench ${elapsed}s  ${line}\n`);
};

let interrupted = false;
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
  process.on(signal, () => {
    // npm forwards a terminal's Ctrl-C as well: the second one must not cut the cleanup short.
    if (interrupted) return;
    interrupted = true;
    progress(`${signal}: cleaning up`);
    cleanUp().finally(() => process.exit(code));
  });
}

let options;
try {
  options = parseOptions(process.argv.slice(2), process.env);
} catch (error) {
  process.stderr.write(`bench: ${error.message} (see npm run bench -- --help)\n`);
  process.exit(2);
}
if (options.help) {
  process.stdout.write(`${USAGE}\n`);
} else {
  try {
    await main(options);
  } catch (error) {
    if (interrupted) {
      // The signal handler reports and exits.
    } else if (error.code === START_FAILED) {
      // Its message names the cause and the fix.
      process.stderr.write(`bench: ${error.message}\n`);
      process.exitCode = 2;
    } else {
      progress(`failed: ${error.stack ?? error}`);
      process.exitCode = 1;
    }
  } finally {
    if (!interrupted) await cleanUp();
  }
}

async function main(options) {
  const database = await openDatabase({ databaseUrl: options.databaseUrl, progress });
  const { url } = database;
  const admin = await connect(url);
  onCleanup(() => admin.end());
  const machine = await describeMachine(database.serverVersion);
  // Anything else running on the machine shows up in every figure: keep a record of it.
  const loadAtStart = os.loadavg()[0];
  if (options.writeOnly) {
    const writePath = await measureWritePath({ url, rows: options.writeRows, repeat: options.repeat, progress });
    machine.loadAverage = { start: loadAtStart, end: os.loadavg()[0] };
    process.stdout.write(`${options.json ? renderJson({ machine, options, writePath }) : renderTable({ machine, options, writePath })}\n`);
    return;
  }
  const config = await benchConfig(url, { batchSize: options.batchSize });
  if (options.replayMemory) {
    const replayMemory = await measureReplayMemory({ url, admin, config, events: options.replayEvents, streams: options.streams, batchSize: options.batchSize, progress });
    machine.loadAverage = { start: loadAtStart, end: os.loadavg()[0] };
    process.stdout.write(`${options.json ? renderJson({ machine, options, replayMemory }) : renderTable({ machine, options, replayMemory })}\n`);
    return;
  }

  progress(`generating ${options.events} events over ${options.streams} streams`);
  const store = await createStore(admin, config, options);
  const naiveUpTo = await positionOf(admin, options.naiveEvents);

  // Round-robin over the contenders, so that a load change on the machine hits them all alike.
  const runs = new Map(CONTENDERS.map((contender) => [contender, []]));
  for (let round = 1; round <= options.repeat; round++) {
    for (const contender of CONTENDERS) {
      const { label, events, upTo, partial } = plan(contender, options, store, naiveUpTo);
      // Start each run with the previous contender's dirty pages written out.
      await admin.query('checkpoint').catch(() => {});
      progress(`${label}: ${events} events${options.repeat > 1 ? ` (round ${round} of ${options.repeat})` : ''}`);
      const { result: { seconds }, cores } = await measuringCores(() =>
        contender.run({ url, admin, round, table: contender.table, batchSize: options.batchSize, limit: events, upTo }),
      );
      await verifyReadModel(admin, contender.table, { upTo, totals: partial ? undefined : store.totals });
      progress(`  ${Math.round(events / seconds)} events/s, result checked`);
      runs.get(contender).push({ seconds, cores });
    }
  }
  const results = CONTENDERS.map((contender) => {
    const { label, events } = plan(contender, options, store, naiveUpTo);
    const measured = runs.get(contender);
    const cores = measured.map((run) => run.cores);
    return {
      key: contender.key,
      label,
      events,
      seconds: median(measured.map((run) => run.seconds)),
      runs: measured.map((run) => run.seconds),
      cores: cores.includes(null) ? null : median(cores),
    };
  });

  progress('live latency');
  const live = await measureLiveLatency({
    url,
    admin,
    batchSize: options.batchSize,
    rate: options.rate,
    duration: options.duration,
    writers: options.writers,
    commitTimestamps: database.commitTimestamps,
    progress,
  });
  // The example balances projection builds the same read model: it must match all the events.
  const { rows: [head] } = await admin.query('select max(position)::text as position from projd.events');
  await verifyReadModel(admin, EXAMPLE_TABLES.balances, { upTo: head.position });

  const smallBatches = await measureSmallBatches({ url, admin, batchSize: options.batchSize, progress });

  const slowNeighbour = await measureSlowNeighbour({
    url,
    admin,
    batchSize: options.batchSize,
    commitTimestamps: database.commitTimestamps,
    progress,
  });

  const writePath = await measureWritePath({ url, rows: options.writeRows, repeat: options.repeat, progress });

  machine.loadAverage = { start: loadAtStart, end: os.loadavg()[0] };
  const report = { machine, options, store, results: summarize(results), live, smallBatches, slowNeighbour, writePath };
  process.stdout.write(`${options.json ? renderJson(report) : renderTable(report)}\n`);
}

/** What a contender applies: every event, or the first --naive-events for the naive loop. */
function plan(contender, options, store, naiveUpTo) {
  const label = typeof contender.label === 'function' ? contender.label(options) : contender.label;
  const partial = contender.key === 'naiveLoop';
  return partial
    ? { label, partial, events: options.naiveEvents, upTo: naiveUpTo }
    : { label, partial, events: store.events, upTo: store.headPosition };
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}
