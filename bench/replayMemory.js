// Replay memory: `projd replay balances`, run as a real process exactly as a user runs it, over a
// store of --replay-events events, while the benchmark samples the process's resident set from
// /proc. A replay should hold a batch at a time: its peak should not grow with the store.

import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { onCleanup, timeout } from './cleanup.js';
import { PROJD_BIN, writeProject } from './project.js';
import { verifyReadModel } from './readModel.js';
import { createStore } from './store.js';

const BALANCES_FILE = fileURLToPath(new URL('../projections/balances.ts', import.meta.url));
const SAMPLE_MS = 100;
/** The target: the replay's peak resident set, in MiB. */
export const PEAK_RSS_TARGET_MIB = 150;
/** Where the resident set is reported, as fractions of the store. */
const MARKS = [0.25, 0.5, 1];
/** Flat: the highest resident set of the replay's second half at most this much above its first half's. */
const FLAT_TOLERANCE = 0.1;

export async function measureReplayMemory({ url, admin, config, events, streams, batchSize, progress }) {
  progress(`replay memory: generating ${events} events over ${streams} streams`);
  const store = await createStore(admin, config, { events, streams });

  const configFile = await writeProject({ batchSize, copies: [BALANCES_FILE] });

  progress(`replay memory: projd replay balances over ${events} events, sampling its RSS every ${SAMPLE_MS} ms`);
  const run = await replayWhileSampling({ url, configFile, events, progress });
  await verifyReadModel(admin, 'balances', { upTo: store.headPosition, totals: store.totals });

  const atMarks = MARKS.map((fraction) => {
    const at = Math.round(fraction * events);
    const sample = run.samples.find((entry) => entry.done >= at);
    return { events: at, rssMiB: sample ? sample.rssMiB : null };
  });
  // When the resident set was highest: early (loading, the first batches) or late (growing with the events).
  const highest = run.samples.reduce((best, sample) => (sample.rssMiB > best.rssMiB ? sample : best), run.samples[0]);
  return {
    events,
    streams,
    batchSize,
    rate: run.rate,
    seconds: run.seconds,
    replayed: run.replayed,
    atMarks,
    peakRssMiB: run.peakMiB,
    highestSample: highest && { events: highest.done, seconds: highest.ms / 1000, rssMiB: highest.rssMiB },
    peakTargetMiB: PEAK_RSS_TARGET_MIB,
    meetsPeakTarget: run.peakMiB <= PEAK_RSS_TARGET_MIB,
    flat: isFlat(run.samples),
  };
}

/** Whether the resident set stopped growing: the second half of the events peaks no higher than the first (within FLAT_TOLERANCE). */
function isFlat(samples) {
  const total = samples.at(-1)?.done ?? 0;
  const highest = (entries) => Math.max(0, ...entries.map((sample) => sample.rssMiB));
  const firstHalf = highest(samples.filter((sample) => sample.done <= total / 2));
  const secondHalf = highest(samples.filter((sample) => sample.done > total / 2));
  return firstHalf > 0 && secondHalf <= firstHalf * (1 + FLAT_TOLERANCE);
}

/**
 * Spawns `projd replay balances` and samples VmRSS and VmHWM (the peak) from /proc every
 * SAMPLE_MS; each sample carries the events replayed by then, from the replay's own progress
 * lines (JSON log lines, since its output is not a terminal).
 */
async function replayWhileSampling({ url, configFile, events, progress }) {
  const child = spawn(process.execPath, [PROJD_BIN, 'replay', 'balances', '-c', configFile, '--progress-interval', '500ms'], {
    env: { ...process.env, DATABASE_URL: url },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const killChild = onCleanup(() => {
    if (child.exitCode === null) child.kill('SIGTERM');
  });
  let done = 0;
  let replayed;
  let stderr = '';
  const samples = [];
  let peakMiB = 0;
  const started = performance.now();
  let lastShown = 0;

  createInterface({ input: child.stdout }).on('line', (line) => {
    if (line.startsWith('replayed ')) {
      replayed = line;
      done = events;
      void sample(); // the resident set with every event applied, before the process winds down
      return;
    }
    try {
      const entry = JSON.parse(line);
      if (entry.msg === 'replay.progress' && typeof entry.done === 'number') done = entry.done;
    } catch {
      // Not a log line.
    }
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));

  async function sample() {
    const status = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => undefined);
    if (status === undefined) return;
    const kib = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
    const rssMiB = kib('VmRSS') / 1024;
    peakMiB = Math.max(peakMiB, kib('VmHWM') / 1024);
    samples.push({ ms: performance.now() - started, done, rssMiB });
    if (done - lastShown >= events / 10) {
      lastShown = done;
      progress(`  ${done} events replayed, RSS ${rssMiB.toFixed(0)} MiB, peak ${peakMiB.toFixed(0)} MiB`);
    }
  }
  let finished = false;
  const sampling = (async () => {
    while (!finished) {
      await sample();
      await timeout(SAMPLE_MS);
    }
  })();
  const { code, signal } = await exited;
  finished = true;
  await sampling;
  await killChild();
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) {
    throw new Error(`projd replay exited with ${signal ?? code}: ${stderr.trim().split('\n').at(-1) ?? ''}`);
  }
  const rate = /\(([\d,]+) events\/s\)/.exec(replayed ?? '')?.[1];
  return { samples, peakMiB, seconds, replayed, rate: rate === undefined ? null : Number(rate.replaceAll(',', '')) };
}
