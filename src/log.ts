import { pino, type Logger, type Level } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export interface LogOptions {
  /** Minimum level written. @defaultValue `'info'` */
  level?: Level | 'silent';
  /** Human-readable lines instead of JSON. @defaultValue whether stdout is a terminal */
  pretty?: boolean;
}

/**
 * pino JSON lines on stdout, or readable lines when stdout is a terminal.
 * pino-pretty runs as a synchronous stream (no worker thread), so the last lines before
 * exit are never lost.
 */
export function createLogger(options: LogOptions = {}): Logger {
  const level = options.level ?? 'info';
  const usePretty = options.pretty ?? Boolean(process.stdout.isTTY);
  if (!usePretty) return pino({ level, base: { pid: process.pid } });
  return pino(
    { level },
    pretty({ colorize: true, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }),
  );
}

/** A logger that writes nothing: the default for library users who pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
