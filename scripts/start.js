// `npm start`: `projd run` against DATABASE_URL, or else against an embedded PostgreSQL whose
// data stays in .projd/postgres between runs (as root in a private folder, in the temp folder:
// the server's OS user cannot reach the project there).

import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { START_FAILED, reachableDataDir, startEmbeddedPostgres } from './embeddedPostgres.js';
import { quickStartCommands, shellWord } from './quickStart.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DATA_DIR = path.join(ROOT, '.projd', 'postgres');
const PREFERRED_PORT = 54329;
// npm forwards a terminal's Ctrl-C to us as well, so one keypress can arrive twice.
const DUPLICATE_SIGNAL_MS = 500;

let server;
let url = process.env.DATABASE_URL;
if (url) {
  print(`Using DATABASE_URL (${redact(url)})`, null);
} else {
  try {
    const dataDir = await reachableDataDir(DATA_DIR);
    // Detached: the daemon drains on Ctrl-C while the server stays up; we stop it afterwards.
    server = await startEmbeddedPostgres({ dataDir, port: PREFERRED_PORT, persistent: true, detached: true });
  } catch (error) {
    // The message names the cause and the fix; anything else is a bug, shown with its stack.
    console.error(error.code === START_FAILED ? `projd: ${error.message}` : error);
    process.exit(error.code === START_FAILED ? 2 : 3);
  }
  url = server.url;
  print(`Embedded PostgreSQL is ready (data in ${shortPath(server.dataDir)}):\n  ${url}`, url);
}

const daemon = spawn(process.execPath, [path.join(ROOT, 'bin', 'projd.js'), 'run'], {
  cwd: ROOT,
  env: { ...process.env, DATABASE_URL: url },
  stdio: 'inherit',
  // Own process group: the terminal's Ctrl-C reaches only us, and we forward it exactly once.
  detached: true,
});

const lastForwarded = new Map();
for (const [received, forwarded] of [['SIGINT', 'SIGINT'], ['SIGTERM', 'SIGTERM'], ['SIGHUP', 'SIGTERM']]) {
  process.on(received, () => {
    const now = Date.now();
    if (now - (lastForwarded.get(forwarded) ?? -Infinity) < DUPLICATE_SIGNAL_MS) return;
    lastForwarded.set(forwarded, now);
    if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill(forwarded);
  });
}

daemon.once('error', async (error) => {
  console.error(`projd: could not start the daemon: ${error.message}`);
  await server?.stop();
  process.exit(1);
});

daemon.once('exit', async (code, signal) => {
  await server?.stop();
  process.exit(code ?? 128 + (os.constants.signals[signal] ?? 0));
});

/** Where the server is, then the lines to paste elsewhere; `pasteUrl` null: DATABASE_URL is the user's own. */
function print(where, pasteUrl) {
  const commands = [`cd ${shellWord(ROOT.replace(/\/$/, ''))}`, ...quickStartCommands(pasteUrl)];
  const withUrl = pasteUrl === null ? ' with the same DATABASE_URL set' : '';
  console.log(
    [
      '',
      where,
      '',
      `In another terminal${withUrl}, append events and look at the read model:`,
      ...commands.map((command) => `  ${command}`),
      '',
      'Starting projd run (Ctrl-C to stop)',
      '',
    ].join('\n'),
  );
}

/** Relative inside the project, absolute outside it. */
function shortPath(dir) {
  const relative = path.relative(ROOT, dir);
  return relative.startsWith('..') ? dir : relative;
}

function redact(connectionString) {
  try {
    const parsed = new URL(connectionString);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'not a URL';
  }
}
