import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeEach } from 'vitest';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = path.join(REPO_ROOT, 'bin', 'projd.js');

export interface CliOptions {
  cwd: string;
  /** Added to the inherited environment; `undefined` removes a variable. DATABASE_URL is never inherited. */
  env?: Record<string, string | undefined>;
  /** Script to run instead of `bin/projd.js`; for the helpers' own tests. */
  bin?: string;
}

export interface RunCliOptions extends CliOptions {
  /** The child is killed and the call fails after this long. @defaultValue 30000 */
  timeoutMs?: number;
  /** Written to the child's stdin, which then ends. @defaultValue stdin is /dev/null */
  input?: string;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** One pino line from the daemon's stdout. */
export interface LogLine {
  level?: number | string;
  msg?: string;
  [key: string]: unknown;
}

/** A daemon's line saying a projection went live. */
export const isLiveLine = (line: LogLine) => line.msg === 'projection.state' && line.to === 'live';

export interface Daemon {
  child: ChildProcess;
  /**
   * The first log line, among those already seen and those to come, that matches: a `msg`
   * string or a predicate. `from` skips the first lines, e.g. `daemon.logs().length` taken
   * before an action. Fails at once if the daemon exits, and at the deadline.
   */
  waitForLog(match: string | ((line: LogLine) => boolean), timeoutMs?: number, options?: { from?: number }): Promise<LogLine>;
  /** The JSON log lines so far. */
  logs(): LogLine[];
  /** Every stdout line so far, JSON or not. */
  stdoutLines(): string[];
  stderr(): string;
  /** Sends `signal` and waits for the exit; fails (after SIGKILL) if it takes longer than `timeoutMs`. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  /** SIGKILL, as a crash would; resolves once the process is gone. */
  kill9(): Promise<void>;
}

type Scope = 'test' | 'file';

interface Tracked {
  child: ChildProcess;
  description: string;
  scope: Scope;
  exited: Promise<void>;
}

// One registry per process, whichever copy of this module made it, with a single exit hook.
const REGISTRY = Symbol.for('projd.test.children');
const processGlobals = globalThis as { [REGISTRY]?: Set<Tracked> };
const running = (processGlobals[REGISTRY] ??= createRegistry());
let inTest = false;

// A child left running fails the test (or, for one started in beforeAll, the file) that left it.
// Registered at import: vitest evaluates this module once per test file (isolate is on). Hooks
// registered first run first before a test and last after it, so `inTest` spans the test's own
// beforeEach and afterEach hooks.
beforeEach(() => {
  inTest = true;
});
afterEach(async () => {
  inTest = false;
  await assertNoChildrenLeft('test');
});
afterAll(() => assertNoChildrenLeft('file'));

function createRegistry(): Set<Tracked> {
  const registry = new Set<Tracked>();
  process.on('exit', () => {
    for (const tracked of registry) tracked.child.kill('SIGKILL');
  });
  return registry;
}

/** Runs `node bin/projd.js …args` to its exit. */
export async function runCli(args: string[], options: RunCliOptions): Promise<CliResult> {
  const { timeoutMs = 30_000, input } = options;
  const { child, tracked } = spawnTracked(args, options, input === undefined ? 'ignore' : 'pipe');
  // A child that exits without reading its stdin must not fail the write with EPIPE.
  child.stdin?.on('error', () => undefined).end(input);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));

  return new Promise<CliResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${tracked.description} did not exit within ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    // 'close', not 'exit': it fires once stdout and stderr have been read to the end.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Starts `node bin/projd.js …args` (usually `run`) and follows its JSON log lines. */
export function startDaemon(args: string[], options: CliOptions): Daemon {
  const { child, tracked } = spawnTracked(args, options);
  const lines: string[] = [];
  const logs: LogLine[] = [];
  let stderr = '';
  const waiters = new Set<{ test: (line: LogLine) => boolean; resolve: (line: LogLine) => void; fail: (why: string) => void }>();

  let pending = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk;
    const complete = pending.split('\n');
    pending = complete.pop() ?? '';
    for (const line of complete) onLine(line);
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.once('exit', (code, signal) => {
    if (pending !== '') onLine(pending);
    for (const waiter of waiters) waiter.fail(`exited (code ${code}, signal ${signal})`);
  });

  function onLine(line: string): void {
    lines.push(line);
    const parsed = parseLogLine(line);
    if (!parsed) return;
    logs.push(parsed);
    for (const waiter of waiters) if (waiter.test(parsed)) waiter.resolve(parsed);
  }

  function diagnostics(): string {
    return `\nlast stdout lines:\n  ${lines.slice(-20).join('\n  ')}\nstderr:\n  ${stderr.trimEnd().split('\n').slice(-20).join('\n  ')}`;
  }

  return {
    child,
    logs: () => [...logs],
    stdoutLines: () => [...lines],
    stderr: () => stderr,

    waitForLog(match, timeoutMs = 30_000, { from = 0 } = {}) {
      const test = typeof match === 'string' ? (line: LogLine) => line.msg === match : match;
      const wanted = typeof match === 'string' ? `msg '${match}'` : 'the predicate';
      const seen = logs.slice(from).find(test);
      if (seen) return Promise.resolve(seen);
      if (!isRunning(child)) {
        return Promise.reject(new Error(`${tracked.description}: exited before a log line matched ${wanted}${diagnostics()}`));
      }
      return new Promise<LogLine>((resolve, reject) => {
        const waiter = {
          test,
          resolve: (line: LogLine) => settle(() => resolve(line)),
          fail: (why: string) => settle(() => reject(new Error(`${tracked.description}: ${why} before a log line matched ${wanted}${diagnostics()}`))),
        };
        const timer = setTimeout(() => waiter.fail(`no match within ${timeoutMs} ms`), timeoutMs);
        function settle(done: () => void): void {
          clearTimeout(timer);
          waiters.delete(waiter);
          done();
        }
        waiters.add(waiter);
      });
    },

    async stop(signal = 'SIGTERM', timeoutMs = 20_000) {
      if (isRunning(child)) {
        child.kill(signal);
        const exited = await Promise.race([tracked.exited.then(() => true), delay(timeoutMs).then(() => false)]);
        if (!exited) {
          child.kill('SIGKILL');
          await tracked.exited;
          throw new Error(`${tracked.description}: did not exit within ${timeoutMs} ms of ${signal}, killed${diagnostics()}`);
        }
      }
      return child.exitCode;
    },

    async kill9() {
      if (isRunning(child)) child.kill('SIGKILL');
      await tracked.exited;
    },
  };
}

/**
 * Fails if a child started by these helpers is still running, after killing it. Without
 * `scope`, checks all; the hooks above check children started inside a test after each test,
 * and children started outside one (beforeAll) after the file.
 */
export async function assertNoChildrenLeft(scope?: Scope): Promise<void> {
  const left = [...running].filter((tracked) => isRunning(tracked.child) && (scope === undefined || tracked.scope === scope));
  if (left.length === 0) return;
  for (const tracked of left) tracked.child.kill('SIGKILL');
  await Promise.all(left.map((tracked) => tracked.exited));
  const names = left.map((tracked) => `${tracked.description} (pid ${tracked.child.pid})`).join(', ');
  throw new Error(`still running, now killed: ${names}; stop every child a ${scope ?? 'test'} starts`);
}

function spawnTracked(args: string[], options: CliOptions, stdin: 'ignore' | 'pipe' = 'ignore'): { child: ChildProcess; tracked: Tracked } {
  const bin = options.bin ?? BIN;
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: options.cwd,
    env: childEnv(options.env),
    stdio: [stdin, 'pipe', 'pipe'],
  });
  const tracked: Tracked = {
    child,
    description: `${path.basename(bin)} ${args.join(' ')}`.trim(),
    scope: inTest ? 'test' : 'file',
    exited: new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    }),
  };
  running.add(tracked);
  void tracked.exited.then(() => running.delete(tracked));
  return { child, tracked };
}

function childEnv(overrides: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  // DATABASE_URL may point at the suite's server; each test passes its own database explicitly.
  const { DATABASE_URL: _inherited, FORCE_COLOR: _color, ...env } = process.env;
  const merged: NodeJS.ProcessEnv = { ...env, NO_COLOR: '1' };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete merged[key];
    else merged[key] = value;
  }
  return merged;
}

function parseLogLine(line: string): LogLine | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const parsed: unknown = JSON.parse(line);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as LogLine) : undefined;
  } catch {
    return undefined;
  }
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
