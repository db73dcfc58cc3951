// `projd run`, started as a real process exactly as a user runs it: a project folder (project.js),
// the daemon in a Node process of its own, ready once /readyz answers 200 (every projection
// caught up once), stopped with SIGTERM.

import { spawn } from 'node:child_process';
import { freePort } from '../scripts/embeddedPostgres.js';
import { onCleanup, timeout } from './cleanup.js';
import { PROJD_BIN, writeProject } from './project.js';

const READY_POLL_MS = 50;
const STOP_GRACE_MS = 10_000;
// Enough of the daemon's output to say why it failed.
const OUTPUT_TAIL_CHARS = 4000;

/**
 * @param {{ url: string, batchSize: number, copies: string[], files: Record<string, string>, readyWithinMs: number }} options
 * `copies`: projection files copied into the projections folder; `files`: { name: text } written beside them.
 * @returns {Promise<{ pid: number, stop: () => Promise<void> }>}
 */
export async function startDaemon({ url, batchSize, copies, files, readyWithinMs }) {
  const port = await freePort();
  const configFile = await writeProject({ batchSize, copies, files, metricsPort: port });

  const child = spawn(process.execPath, [PROJD_BIN, 'run', '-c', configFile], {
    env: { ...process.env, DATABASE_URL: url },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk) => {
    output = (output + chunk).slice(-OUTPUT_TAIL_CHARS);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));

  const stop = onCleanup(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const how = await Promise.race([exited, timeout(STOP_GRACE_MS, 'timeout')]);
    if (how === 'timeout') {
      child.kill('SIGKILL');
      await exited;
    }
  });

  const deadline = performance.now() + readyWithinMs;
  for (;;) {
    const how = await Promise.race([exited, timeout(READY_POLL_MS, 'running')]);
    if (how !== 'running') throw new Error(`projd run exited with ${how} before it was ready: ${output.trim().split('\n').at(-1) ?? ''}`);
    if (await isReady(port)) return { pid: child.pid, stop };
    if (performance.now() > deadline) {
      await stop();
      throw new Error(`projd run was not ready within ${readyWithinMs / 1000} s: ${output.trim().split('\n').at(-1) ?? ''}`);
    }
  }
}

async function isReady(port) {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/readyz`);
    return response.status === 200;
  } catch {
    return false; // not listening yet
  }
}
