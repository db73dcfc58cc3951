import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** The options of the loader's jiti that name its transform cache's files. */
export interface TranspileCache {
  /** jiti's `fsCache` folder. */
  fsCache: string;
  sourceMaps: boolean;
}

// Runs in the worker, as CommonJS. It transforms as jiti's evalModule does for a module
// imported asynchronously (the same options, so the same cache entry), and never runs the
// module. A file that fails to transform is left to the loader, which reports it.
const WORKER_SOURCE = /* js */ `
  const { readFileSync } = require('node:fs');
  const { workerData } = require('node:worker_threads');
  const createJiti = require(workerData.jiti);
  const jiti = createJiti(workerData.from, { fsCache: workerData.fsCache, sourceMaps: workerData.sourceMaps, tryNative: false });
  for (const filename of workerData.files) {
    try {
      jiti.transform({ filename, source: readFileSync(filename, 'utf8'), ts: /\\.[cm]?tsx?$/.test(filename), async: true });
    } catch {}
  }
`;

/**
 * Transpiles projection modules into jiti's transform cache on a worker thread, so that the
 * transpiler (Babel, some 25 MiB once loaded) lives and dies with the worker instead of
 * staying in the process for good: the loader then finds each module transpiled, and never
 * loads it. A module already cached costs the worker a file read and a hash. Best effort: what
 * the worker leaves undone (a file it cannot transform, a module's own imports), the loader
 * transpiles itself, and reports.
 */
export async function transpileAhead(files: readonly string[], cache: TranspileCache): Promise<void> {
  if (files.length === 0) return;
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { jiti: createRequire(import.meta.url).resolve('jiti'), from: import.meta.url, files, ...cache },
    stdout: true, // not shown: a transform writes nothing worth it, and the loader reports failures
    stderr: true,
  });
  await new Promise<void>((resolve) => {
    worker.once('exit', () => resolve());
    worker.once('error', () => resolve());
  });
}
