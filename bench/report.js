// What the run measured, as a table for people or as JSON for scripts.

import { readFile } from 'node:fs/promises';
import os from 'node:os';

export async function describeMachine(serverVersion) {
  return {
    cpus: os.availableParallelism(),
    cpuModel: await cpuModel(),
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    postgres: serverVersion,
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
  };
}

async function cpuModel() {
  try {
    const cpuinfo = await readFile('/proc/cpuinfo', 'utf8');
    const line = cpuinfo.split('\n').find((entry) => entry.startsWith('model name'));
    if (line) return line.slice(line.indexOf(':') + 1).trim();
  } catch {
    // Not Linux: os.cpus() below.
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

/** Adds events/s and the ratios to projd and to the set-based limit; an unavailable contender gets nulls. */
export function summarize(results) {
  const rated = results.map((result) => ({
    ...result,
    eventsPerSecond: result.unavailable ? null : result.events / result.seconds,
  }));
  const projd = rated.find((result) => result.key === 'projd' && !result.unavailable);
  const limit = rated.find((result) => result.key === 'setBased' && !result.unavailable);
  const ratio = (result, base) => (base && result.eventsPerSecond !== null ? result.eventsPerSecond / base.eventsPerSecond : null);
  return rated.map((result) => ({ ...result, vsProjd: ratio(result, projd), vsLimit: ratio(result, limit) }));
}

/** The issue's targets for the catch-up figures: a contender's rate against another's, in the same run. */
export const TARGETS = [
  { key: 'projdSqlBatch', over: 'unnestLoop', atLeast: 2 },
  { key: 'projdModuleBatch', over: 'unnestLoop', atLeast: 0.8 },
  { key: 'projdYaml', over: 'projd', atLeast: 2.5 },
  // Four copies of the base at once, over the same cores: `parts` bounds the ceiling below.
  { key: 'projdPartitions4', over: 'projd', atLeast: 1.8, parts: 4 },
];

/**
 * Each target with its measured ratio and whether it is met (null when a side did not run). A
 * target of parts run at once also gets the machine's ceiling for it: the base alone kept
 * `cores` of the CPUs busy, so its copies together can go at most `cpus / cores` times as fast,
 * however well they share the work.
 */
export function checkTargets(results, cpus) {
  return TARGETS.map(({ key, over, atLeast, parts }) => {
    const subject = results.find((result) => result.key === key);
    const base = results.find((result) => result.key === over);
    const missing = !subject || !base ? { unavailable: 'not run' } : [subject, base].find((result) => result.unavailable);
    const ratio = missing ? null : subject.eventsPerSecond / base.eventsPerSecond;
    return {
      key,
      over,
      label: subject?.label ?? key,
      overLabel: base?.label ?? over,
      atLeast,
      ratio,
      met: ratio === null ? null : ratio >= atLeast,
      ...(parts && base?.cores ? { ceiling: Math.min(parts, cpus / base.cores), baseCores: base.cores } : {}),
      ...(missing ? { unavailable: missing.unavailable ?? 'not run' } : {}),
    };
  });
}

export function renderJson({ machine, options, store, results, live, smallBatches, slowNeighbour, writePath, replayMemory }) {
  return JSON.stringify(
    {
      machine,
      options: {
        events: options.events,
        streams: options.streams,
        batchSize: options.batchSize,
        repeat: options.repeat,
        naiveEvents: options.naiveEvents,
      },
      store: store && { events: store.events, accounts: store.accounts },
      catchUp: results?.map(({ key, label, events, seconds, runs, cores, eventsPerSecond, vsProjd, vsLimit, unavailable }) =>
        unavailable
          ? { key, label, events, unavailable }
          : {
              key,
              label,
              events,
              seconds: round(seconds, 3),
              runs: runs.map((run) => round(run, 3)),
              coresBusy: round(cores, 2),
              eventsPerSecond: Math.round(eventsPerSecond),
              vsProjd: round(vsProjd, 3),
              vsLimit: round(vsLimit, 4),
            },
      ),
      targets:
        results &&
        checkTargets(results, machine.cpus).map((target) => ({
          ...target,
          ratio: round(target.ratio, 3),
          ...(target.ceiling === undefined ? {} : { ceiling: round(target.ceiling, 3), baseCores: round(target.baseCores, 2) }),
        })),
      live: live && {
        ...live,
        catchUpSeconds: round(live.catchUpSeconds, 2),
        achievedRate: round(live.achievedRate, 1),
        writerLateMs: round(live.writerLateMs, 1),
        coresBusy: round(live.coresBusy, 2),
      },
      replayMemory: replayMemory && {
        ...replayMemory,
        seconds: round(replayMemory.seconds, 1),
        peakRssMiB: round(replayMemory.peakRssMiB, 1),
        highestSample: replayMemory.highestSample && {
          ...replayMemory.highestSample,
          seconds: round(replayMemory.highestSample.seconds, 1),
          rssMiB: round(replayMemory.highestSample.rssMiB, 1),
        },
        atMarks: replayMemory.atMarks.map((mark) => ({ ...mark, rssMiB: round(mark.rssMiB, 1) })),
      },
      smallBatches: smallBatches && {
        ...smallBatches,
        unprepared: roundSmall(smallBatches.unprepared),
        prepared: roundSmall(smallBatches.prepared),
        cpuRatio: round(smallBatches.cpuRatio, 3),
      },
      slowNeighbour: slowNeighbour && { ...slowNeighbour, p99Ratio: round(slowNeighbour.p99Ratio, 3) },
      writePath: writePath && {
        concurrent: writePath.concurrent,
        cases: writePath.cases.map(({ key, label, rows, store: withTriggers, plain, ratio, cpuRatio }) => ({
          key,
          label,
          rows,
          store: roundSide(withTriggers),
          plain: roundSide(plain),
          ratio: round(ratio, 3),
          cpuRatio: round(cpuRatio, 3),
        })),
      },
    },
    null,
    2,
  );
}

export function renderTable({ machine, options, store, results, live, smallBatches, slowNeighbour, writePath, replayMemory }) {
  const lines = [];
  if (results) {
    const repeat = options.repeat > 1 ? `, median of ${options.repeat}` : '';
    lines.push(
      `catch-up, ${count(store.events)} events over ${count(store.accounts)} streams ` +
        `(PostgreSQL ${machine.postgres}, node ${machine.node.replace(/^v/, '')}, ${machine.cpus} CPUs${repeat})`,
    );
    // Cores busy: the whole machine's, over the run, this process and the server's included.
    const header = ['contender', 'events/s', 'vs projd', 'seconds', 'events', 'cores busy'];
    const rows = results.map((result) =>
      result.unavailable
        ? [result.label, `n/a (${result.unavailable})`, '', '', '', '']
        : [
            result.label,
            count(Math.round(result.eventsPerSecond)),
            result.vsProjd === null ? '' : result.vsProjd.toFixed(2),
            result.seconds.toFixed(2),
            count(result.events),
            result.cores === null ? 'n/a' : result.cores.toFixed(2),
          ],
    );
    // An n/a note is longer than any figure: it runs on from the label instead of widening the column.
    const figures = rows.filter((row) => !row[1].startsWith('n/a'));
    const widths = header.map((title, column) => Math.max(title.length, ...figures.map((row) => row[column].length)));
    const format = (row) =>
      row[1].startsWith('n/a')
        ? `${row[0].padEnd(widths[0] + 2)}  ${row[1]}`
        : row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column] + 2) : cell.padStart(widths[column] + 2))).join('');
    lines.push(format(header), ...rows.map(format));

    const projd = results.find((result) => result.key === 'projd');
    const limit = results.find((result) => result.key === 'setBased');
    const plain = results.find((result) => result.key === 'plainLoop');
    const savepoint = results.find((result) => result.key === 'savepointLoop');
    lines.push('');
    if (projd && limit) lines.push(`projd reaches ${percent(projd.vsLimit)} of the set-based limit`);
    if (plain && savepoint) {
      lines.push(`a savepoint per event costs ${percent(1 - savepoint.eventsPerSecond / plain.eventsPerSecond)} of the plain loop's throughput`);
    }
    const naive = results.find((result) => result.key === 'naiveLoop');
    if (naive && naive.events < store.events) lines.push(`the naive loop applied the first ${count(naive.events)} events only (--naive-events)`);

    lines.push('', 'targets (ratios of events/s in this run):');
    for (const target of checkTargets(results, machine.cpus)) {
      const wanted = `${target.label} ≥ ${target.atLeast}x ${target.overLabel}`;
      const outcome = target.ratio === null ? `n/a (${target.unavailable})` : `${target.ratio.toFixed(2)}x  ${target.met ? 'pass' : 'FAIL'}`;
      lines.push(`  ${wanted.padEnd(78)} ${outcome}`);
      if (target.ceiling !== undefined) {
        lines.push(
          `    at most ${target.ceiling.toFixed(2)}x on this machine: the base alone kept ${target.baseCores.toFixed(2)} of its ` +
            `${machine.cpus} cores busy`,
        );
      }
    }
  }

  if (live) lines.push('', ...renderLive(live, machine));
  if (smallBatches) lines.push('', ...renderSmallBatches(smallBatches));
  if (slowNeighbour) lines.push('', ...renderSlowNeighbour(slowNeighbour));
  if (replayMemory) lines.push('', ...renderReplayMemory(replayMemory));
  if (writePath) lines.push('', ...renderWritePath(writePath, machine));
  lines.push('');
  lines.push(`machine: ${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, ${machine.platform}`);
  if (machine.loadAverage) {
    const { start, end } = machine.loadAverage;
    // At the end the benchmark's own two busy processes (node, its backend) are counted in.
    const busy = start > machine.cpus * 0.75 || end > machine.cpus + 1 ? ' — the machine was busy with other work: expect noise' : '';
    lines.push(`load average (1 min): ${start.toFixed(2)} at start, ${end.toFixed(2)} at end${busy}`);
  }
  while (lines[0] === '') lines.shift(); // --write-only: no catch-up table above
  return lines.join('\n');
}

function ms(value) {
  return value === null || value === undefined ? 'n/a' : `${value.toFixed(1)} ms`;
}

function roundSmall(side) {
  return { ...side, p50Ms: round(side.p50Ms, 2), p99Ms: round(side.p99Ms, 2), serverCpuUsPerEvent: round(side.serverCpuUsPerEvent, 0) };
}

function renderSmallBatches(small) {
  const cpu = (side) => (side.serverCpuUsPerEvent === null ? 'n/a (a server elsewhere)' : `${count(Math.round(side.serverCpuUsPerEvent))} µs`);
  const line = (label, side) =>
    `  ${label.padEnd(37)} append to both applied p50 ${ms(side.p50Ms)}, p99 ${ms(side.p99Ms)}; daemon's server CPU per event ${cpu(side)}`;
  return [
    `small batches: ${small.projections.join(' and ')}, one event at a time, each waited for (${count(small.prepared.events)} events a setting, ${small.rounds} rounds):`,
    line('database.preparedStatements false', small.unprepared),
    line('database.preparedStatements true', small.prepared),
    ...(small.cpuRatio === null ? [] : [`  server CPU per event, prepared against unprepared: ${small.cpuRatio.toFixed(2)}x`]),
  ];
}

function renderSlowNeighbour(neighbour) {
  if (neighbour.skipped) return [`slow neighbour: skipped (${neighbour.skipped})`];
  const line = (label, phase) =>
    `  ${label.padEnd(44)} p50 ${ms(phase.latencyMs.p50)}, p99 ${ms(phase.latencyMs.p99)}, max ${ms(phase.latencyMs.max)} (${count(phase.events)} events)`;
  return [
    `slow neighbour: a per-event projection, commit to read model at ${neighbour.rate} ev/s for ${neighbour.seconds} s:`,
    line('alone', neighbour.alone),
    line(`beside one holding each batch ${neighbour.slowBatchMs} ms`, neighbour.besideSlow),
    `  p99 beside the slow projection against alone: ${neighbour.p99Ratio.toFixed(2)}x`,
  ];
}

/** The writers committed well below the rate asked: the latencies were measured at a lighter load. */
function fellBehind(live) {
  return live.achievedRate < live.rate * 0.95;
}

function renderLive(live, machine) {
  const lines = [
    `live latency at ${live.rate} ev/s for ${live.duration} s, projections ${live.projections.join(', ')} ` +
      `(commit to read model, ${live.clock}):`,
  ];
  for (const { readModel, samples, latencyMs } of live.readModels) {
    lines.push(
      `  ${readModel.padEnd(14)} p50 ${ms(latencyMs.p50)}, p95 ${ms(latencyMs.p95)}, p99 ${ms(latencyMs.p99)}, ` +
        `max ${ms(latencyMs.max)} (${count(samples)} events)`,
    );
  }
  lines.push(
    `  target p99 ≤ ${live.p99TargetMs} ms: worst p99 ${ms(live.worstP99Ms)}  ${live.meetsTarget ? 'pass' : 'FAIL'}` +
      (fellBehind(live) ? ` (at ${live.achievedRate.toFixed(0)} ev/s: the writers fell behind the ${live.rate} asked)` : ''),
    `  written ${count(live.written)} events at ${live.achievedRate.toFixed(0)} ev/s over ${live.writers} connection(s), ` +
      `an INSERT late by at most ${ms(live.writerLateMs)}; the projections first caught up in ${live.catchUpSeconds.toFixed(1)} s`,
  );
  if (live.coresBusy !== null && live.coresBusy !== undefined) {
    lines.push(`  the machine's cores were ${live.coresBusy.toFixed(2)} busy of ${machine.cpus} while the writers wrote (everything on it counted)`);
  }
  if (live.breakdownMs) {
    const b = live.breakdownMs;
    const step = (name, value) => `${name} ${ms(value?.p50)} / ${ms(value?.p99)}`;
    lines.push(
      `  where bench_latency's time goes, p50 / p99: ` +
        `${step('commit to notification heard', b.commitToNotified)}, ${step('heard to batch begin', b.notifiedToBatchBegin)}, ` +
        `${step('batch begin to handler', b.batchBeginToHandler)}, ${step('handler to batch commit', b.handlerToBatchCommit)}`,
      `  (commit to batch begin ${ms(b.commitToBatchBegin?.p50)} / ${ms(b.commitToBatchBegin?.p99)}); ` +
        `${count(live.batches)} batches for ${count(live.written)} events, ${step('between batch commits', b.betweenBatchCommits)}; ` +
        `${count(live.notifications)} notifications heard`,
    );
  }
  if (live.waitFor) {
    const w = live.waitFor;
    lines.push(
      `  read your own writes (waitFor on ${w.projection}, every ${w.sampleEvery}th event, ${count(w.waits)} waits), p50 / p99: ` +
        `commit to waiter woken ${ms(w.commitToWokenMs?.p50)} / ${ms(w.commitToWokenMs?.p99)}, ` +
        `commit to read model ${ms(w.commitToReadModelMs?.p50)} / ${ms(w.commitToReadModelMs?.p99)}, ` +
        `read model to waiter woken ${ms(w.readModelToWokenMs?.p50)} / ${ms(w.readModelToWokenMs?.p99)}`,
    );
  }
  if (live.heldBackRelease) {
    const { rounds, events, openMs, p50Ms, maxMs } = live.heldBackRelease;
    lines.push(
      `  held back: ${events} events behind a transaction that wrote none, open ${openMs / 1000} s; ` +
        `applied after its commit in p50 ${ms(p50Ms)}, max ${ms(maxMs)} (${rounds} rounds)`,
    );
  }
  return lines;
}

function renderReplayMemory(replay) {
  const mib = (value) => (value === null ? 'n/a' : `${value.toFixed(0)} MiB`);
  return [
    `replay memory: projd replay balances over ${count(replay.events)} events (batch ${replay.batchSize}), ` +
      `${replay.rate === null ? '?' : count(replay.rate)} events/s, ${replay.seconds.toFixed(0)} s`,
    `  RSS at ${replay.atMarks.map((mark) => `${count(mark.events)} events ${mib(mark.rssMiB)}`).join(', ')}; peak ${mib(replay.peakRssMiB)}` +
      (replay.highestSample
        ? ` (highest sample ${mib(replay.highestSample.rssMiB)} at ${count(replay.highestSample.events)} events, ${replay.highestSample.seconds.toFixed(1)} s)`
        : ''),
    `  target peak ≤ ${replay.peakTargetMiB} MiB: ${replay.meetsPeakTarget ? 'pass' : 'FAIL'}; ` +
      `flat (the second half's highest RSS within 10% of the first half's): ${replay.flat ? 'pass' : 'FAIL'}`,
  ];
}

/** One line per case: microseconds per row into projd.events and into the plain table, and their ratio. */
function renderWritePath({ cases, concurrent }, machine) {
  const micros = (seconds, rows) => count(Math.round((seconds * 1e6) / rows));
  const cpu = cases.every((result) => result.cpuRatio !== null);
  const header = ['case', 'rows', 'projd.events µs/row', 'plain µs/row', 'ratio'];
  if (cpu) header.push('server CPU µs/row', 'plain', 'ratio');
  const rows = cases.map((result) => [
    result.label,
    count(result.rows),
    micros(result.store.seconds, result.rows),
    micros(result.plain.seconds, result.rows),
    result.ratio.toFixed(2),
    ...(cpu
      ? [
          micros(result.store.serverCpuSeconds, result.rows),
          micros(result.plain.serverCpuSeconds, result.rows),
          result.cpuRatio.toFixed(2),
        ]
      : []),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  const format = (row) =>
    row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column] + 2) : cell.padStart(widths[column] + 2))).join('');
  const lines = [
    `write path: projd.events (insert triggers) against a plain table of the same shape (PostgreSQL ${machine.postgres})`,
    format(header),
    ...rows.map(format),
  ];
  for (const result of cases.filter((entry) => entry.store.quarterMicrosPerRow)) {
    const quarters = (side) => side.quarterMicrosPerRow.map((value) => count(Math.round(value))).join(' / ');
    lines.push(
      `${result.label}, µs/row by quarter: projd.events ${quarters(result.store)}; plain ${quarters(result.plain)}`,
    );
  }
  if (concurrent) {
    const plain = concurrent.sides.find((side) => side.key === 'plain').commitsPerSecond;
    lines.push(`${concurrent.writers} writers at once, ${count(concurrent.transactions)} single-row transactions each:`);
    for (const side of concurrent.sides) {
      lines.push(
        `  ${side.label.padEnd(58)} ${count(Math.round(side.commitsPerSecond)).padStart(7)} commits/s  ${(side.commitsPerSecond / plain).toFixed(2)} of plain`,
      );
    }
  }
  return lines;
}

function roundSide({ seconds, serverCpuSeconds, quarterMicrosPerRow }) {
  return {
    seconds: round(seconds, 3),
    serverCpuSeconds: round(serverCpuSeconds, 3),
    ...(quarterMicrosPerRow ? { quarterMicrosPerRow: quarterMicrosPerRow.map((value) => round(value, 1)) } : {}),
  };
}

function count(value) {
  return value.toLocaleString('en-US');
}

function percent(ratio) {
  return `${(ratio * 100).toFixed(ratio < 0.1 ? 1 : 0)}%`;
}

function round(value, digits) {
  return value === null || value === undefined ? value : Number(value.toFixed(digits));
}
