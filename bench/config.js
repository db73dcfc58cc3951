// projd's configuration for the benchmark: built-in defaults (batch size 1000, pool of 10, …)
// with the benchmark's database, as `projd run` would resolve them with only DATABASE_URL set.

import { fileURLToPath } from 'node:url';
import { loadConfig } from '../dist/index.js';

// A folder without a projd.yaml, so no config file of the working folder leaks in.
const BENCH_DIR = fileURLToPath(new URL('.', import.meta.url));

/** `dir`: the projections folder, for a run that loads its projections as `projd run` does. */
export async function benchConfig(url, { batchSize, dir }) {
  const config = await loadConfig({ env: { DATABASE_URL: url }, cwd: BENCH_DIR });
  return {
    ...config,
    projections: { ...config.projections, batchSize, ...(dir === undefined ? {} : { dir }) },
    // Nothing here scrapes metrics; keep the port free for a daemon running alongside.
    metrics: { ...config.metrics, port: 0 },
  };
}
