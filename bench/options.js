// Benchmark options: built-in defaults < --quick < environment (BENCH_*) < flags.

import { parseArgs } from 'node:util';

const DEFAULTS = {
  events: 200_000,
  streams: 10_000,
  batchSize: 1000,
  repeat: 1,
  naiveEvents: 20_000,
  rate: 1000,
  duration: 10,
  writers: 16,
  writeRows: 20_000,
  replayEvents: 1_000_000,
};

// A smoke run: small enough to finish in well under a minute.
const QUICK = { events: 20_000, streams: 2_000, naiveEvents: 2_000, duration: 3, writeRows: 5_000, replayEvents: 100_000 };

/** Each numeric option: its flag, its environment variable, and its smallest valid value. */
const NUMERIC = {
  events: { flag: 'events', env: 'BENCH_EVENTS', min: 1 },
  streams: { flag: 'streams', env: 'BENCH_STREAMS', min: 1 },
  batchSize: { flag: 'batch-size', env: 'BENCH_BATCH_SIZE', min: 1 },
  repeat: { flag: 'repeat', env: 'BENCH_REPEAT', min: 1 },
  naiveEvents: { flag: 'naive-events', env: 'BENCH_NAIVE_EVENTS', min: 1 },
  rate: { flag: 'rate', env: 'BENCH_RATE', min: 1 },
  duration: { flag: 'duration', env: 'BENCH_DURATION', min: 1 },
  writers: { flag: 'writers', env: 'BENCH_WRITERS', min: 1 },
  writeRows: { flag: 'write-rows', env: 'BENCH_WRITE_ROWS', min: 100 },
  replayEvents: { flag: 'replay-events', env: 'BENCH_REPLAY_EVENTS', min: 4 },
};

export const USAGE = `usage: npm run bench -- [options]

  --events N        events in the store (default ${DEFAULTS.events}; BENCH_EVENTS)
  --streams N       streams (accounts) they are spread over (default ${DEFAULTS.streams}; BENCH_STREAMS)
  --batch-size N    batch size of projd and of the batched loops (default ${DEFAULTS.batchSize})
  --repeat K        run each catch-up contender K times and keep the median (default ${DEFAULTS.repeat})
  --naive-events N  events the naive per-event loop applies, at most (default ${DEFAULTS.naiveEvents})
  --rate R          live phase: events written per second (default ${DEFAULTS.rate})
  --duration S      live phase: seconds of writing (default ${DEFAULTS.duration})
  --writers W       live phase: writer connections (default ${DEFAULTS.writers})
  --write-rows N    write path: rows per case (default ${DEFAULTS.writeRows}; BENCH_WRITE_ROWS)
  --write-only      run the write path alone, not catch-up and live latency
  --replay-memory   run the replay memory section alone: projd replay of balances over a store of
                    --replay-events events, sampling the process's RSS
  --replay-events N replay memory: events in its store (default ${DEFAULTS.replayEvents}; BENCH_REPLAY_EVENTS)
  --quick           smoke run: ${QUICK.events} events over ${QUICK.streams} streams, ${QUICK.duration} s live, ${QUICK.writeRows} write rows,
                    ${QUICK.replayEvents} replay events
  --json            print the results as JSON on stdout (progress still goes to stderr)
  -h, --help        this text

DATABASE_URL: run against that server (in a database of its own, dropped afterwards)
instead of an embedded PostgreSQL in a temporary folder.`;

/** The resolved options, or `{ help: true }`. Throws an Error with a one-line message on bad input. */
export function parseOptions(argv, env) {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      ...Object.fromEntries(Object.values(NUMERIC).map(({ flag }) => [flag, { type: 'string' }])),
      quick: { type: 'boolean' },
      'write-only': { type: 'boolean' },
      'replay-memory': { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return { help: true };
  if (values['write-only'] && values['replay-memory']) throw new Error('--write-only and --replay-memory each run one section alone: give one');

  const quick = Boolean(values.quick) || env.BENCH_QUICK === '1';
  const options = { ...DEFAULTS, ...(quick ? QUICK : {}) };
  for (const [key, { flag, env: variable, min }] of Object.entries(NUMERIC)) {
    const fromFlag = values[flag];
    const fromEnv = env[variable];
    if (fromFlag !== undefined) options[key] = integer(`--${flag}`, fromFlag, min);
    else if (fromEnv !== undefined && fromEnv !== '') options[key] = integer(variable, fromEnv, min);
  }
  return {
    ...options,
    naiveEvents: Math.min(options.naiveEvents, options.events),
    quick,
    writeOnly: Boolean(values['write-only']),
    replayMemory: Boolean(values['replay-memory']),
    json: Boolean(values.json),
    databaseUrl: env.DATABASE_URL || undefined,
  };
}

function integer(name, text, min) {
  // Underscores allowed, as in 200_000.
  const cleaned = String(text).replaceAll('_', '');
  if (!/^\d+$/.test(cleaned) || Number(cleaned) < min || !Number.isSafeInteger(Number(cleaned))) {
    throw new Error(`${name} must be an integer of at least ${min}, got '${text}'`);
  }
  return Number(cleaned);
}
