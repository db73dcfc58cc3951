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

/** Adds events/s and the ratios to projd and to the set-based limit. */
export function summarize(results) {
  const rated = results.map((result) => ({ ...result, eventsPerSecond: result.events / result.seconds }));
  const projd = rated.find((result) => result.key === 'projd');
  const limit = rated.find((result) => result.key === 'setBased');
  return rated.map((result) => ({
    ...result,
    vsProjd: projd ? result.eventsPerSecond / projd.eventsPerSecond : null,
    vsLimit: limit ? result.eventsPerSecond / limit.eventsPerSecond : null,
  }));
}

export function renderJson({ machine, options, store, results, live, writePath }) {
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
      catchUp: results?.map(({ key, label, events, seconds, runs, eventsPerSecond, vsProjd, vsLimit }) => ({
        key,
        label,
        events,
        seconds: round(seconds, 3),
        runs: runs.map((run) => round(run, 3)),
        eventsPerSecond: Math.round(eventsPerSecond),
        vsProjd: round(vsProjd, 3),
        vsLimit: round(vsLimit, 4),
      })),
      live: live && { ...live, achievedRate: round(live.achievedRate, 1), writerLateMs: round(live.writerLateMs, 1) },
      writePath: writePath && {
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

export function renderTable({ machine, options, store, results, live, writePath }) {
  const lines = [];
  if (results) {
    const repeat = options.repeat > 1 ? `, median of ${options.repeat}` : '';
    lines.push(
      `catch-up, ${count(store.events)} events over ${count(store.accounts)} streams ` +
        `(PostgreSQL ${machine.postgres}, node ${machine.node.replace(/^v/, '')}, ${machine.cpus} CPUs${repeat})`,
    );
    const header = ['contender', 'events/s', 'vs projd', 'seconds', 'events'];
    const rows = results.map((result) => [
      result.label,
      count(Math.round(result.eventsPerSecond)),
      result.vsProjd === null ? '' : result.vsProjd.toFixed(2),
      result.seconds.toFixed(2),
      count(result.events),
    ]);
    const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
    const format = (row) =>
      row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column] + 2) : cell.padStart(widths[column] + 2))).join('');
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
  }

  if (live) {
    const ms = (value) => `${value.toFixed(1)} ms`;
    lines.push('');
    lines.push(
      `live latency at ${live.rate} ev/s for ${live.duration} s (commit to read model, ${live.clock}): ` +
        `p50 ${ms(live.latencyMs.p50)}, p95 ${ms(live.latencyMs.p95)}, p99 ${ms(live.latencyMs.p99)}, max ${ms(live.latencyMs.max)}`,
    );
    lines.push(
      `  written ${count(live.written)} events at ${live.achievedRate.toFixed(0)} ev/s over ${live.writers} connection(s); ` +
        `projd applied them in ${count(live.batches)} batches (${(live.applied / live.batches).toFixed(1)} events per batch)`,
    );
    if (live.p50Ms) {
      const { commitToHandler, handlerToVisible, betweenBatches } = live.p50Ms;
      lines.push(
        `  medians: event commit to handler ${ms(commitToHandler)}, handler to batch commit ${ms(handlerToVisible)}, ` +
          `between batch commits ${ms(betweenBatches)}`,
      );
    }
    if (live.heldBackRelease) {
      const { rounds, events, openMs, p50Ms, maxMs } = live.heldBackRelease;
      lines.push(
        `  held back: ${events} events behind a transaction that wrote none, open ${openMs / 1000} s; ` +
          `applied after its commit in p50 ${ms(p50Ms)}, max ${ms(maxMs)} (${rounds} rounds)`,
      );
    }
  }
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

/** One line per case: microseconds per row into projd.events and into the plain table, and their ratio. */
function renderWritePath({ cases }, machine) {
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
