import { replayProjections, type ReplayProgress } from '../operations/replayProjections.js';
import { parseDuration } from '../config/duration.js';
import { loadConfig } from '../config/loadConfig.js';
import { UserError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import type { CommonOptions } from './main.js';

export interface ReplayCommandOptions extends CommonOptions {
  all?: boolean;
  progressInterval?: string;
}

// On a terminal the progress line is redrawn 4 times a second; in a log, one line every 2 s.
const TERMINAL_PROGRESS_MS = 250;
const LOG_PROGRESS_MS = 2000;

/**
 * `projd replay <name>` or `projd replay --all`: clears and rebuilds, one projection after the
 * other, with a progress line on a terminal and `replay.progress` log lines otherwise, and one
 * `replayed …` line per projection once it has caught up.
 */
export async function replayCommand(name: string | undefined, options: ReplayCommandOptions): Promise<void> {
  if (name !== undefined && options.all) throw new UserError('replay takes a projection name or --all, not both');
  if (name === undefined && !options.all) throw new UserError('replay needs a projection name, or --all for every projection');
  const interval =
    options.progressInterval === undefined ? undefined : parseDuration(options.progressInterval, '--progress-interval');
  const config = await loadConfig({ file: options.config, env: process.env, cwd: process.cwd() });

  const terminal = Boolean(process.stdout.isTTY);
  // On a terminal the progress line stands for the info lines, which would break it up.
  const logger = createLogger({ level: terminal && config.log.level === 'info' ? 'warn' : config.log.level });
  const progress = terminal ? createTerminalProgress(process.stdout) : createLogProgress(logger, process.stdout);
  try {
    await replayProjections(config, name === undefined ? { all: true } : [name], {
      logger,
      onProgress: progress.show,
      progressInterval: interval ?? (terminal ? TERMINAL_PROGRESS_MS : LOG_PROGRESS_MS),
    });
  } finally {
    progress.end();
  }
}

interface ProgressView {
  show(progress: ReplayProgress): void;
  /** Leaves the terminal on a fresh line, also when the replay failed half-way. */
  end(): void;
}

function createTerminalProgress(out: NodeJS.WriteStream): ProgressView {
  let lineOpen = false;
  return {
    show(progress) {
      // \r back to the line's start, ESC[K clears what a longer line left behind.
      if (progress.finished) out.write(`\r\x1b[K${formatReplayed(progress)}\n`);
      else out.write(`\r\x1b[K${formatProgressLine(progress)}`);
      lineOpen = !progress.finished;
    },
    end() {
      if (lineOpen) out.write('\n');
      lineOpen = false;
    },
  };
}

function createLogProgress(logger: Logger, out: NodeJS.WritableStream): ProgressView {
  return {
    show(progress) {
      if (progress.finished) {
        out.write(`${formatReplayed(progress)}\n`);
        return;
      }
      const { projection, done, total, etaSeconds } = progress;
      const rate = Math.round(progress.rate);
      logger.info(
        { projection, done, total, rate, etaSeconds: etaSeconds === null ? null : Math.ceil(etaSeconds) },
        'replay.progress',
      );
    },
    end() {},
  };
}

/** `balances  120,000 / 200,000 events  60%  48,200 ev/s  ETA 2s` */
export function formatProgressLine(progress: ReplayProgress): string {
  const percent = progress.total === 0 ? 100 : Math.floor((progress.done * 100) / progress.total);
  return [
    progress.projection,
    `${formatCount(progress.done)} / ${formatCount(progress.total)} events`,
    `${percent}%`,
    `${formatRate(progress.rate)} ev/s`,
    `ETA ${formatEta(progress.etaSeconds)}`,
  ].join('  ');
}

/** `replayed balances: 200,000 events in 4.1s (48,700 events/s)`; `1 event` for one. */
export function formatReplayed(progress: Pick<ReplayProgress, 'projection' | 'done' | 'elapsedMs' | 'rate'>): string {
  const events = `${formatCount(progress.done)} ${progress.done === 1 ? 'event' : 'events'}`;
  return `replayed ${progress.projection}: ${events} in ${formatElapsed(progress.elapsedMs)} (${formatRate(progress.rate)} events/s)`;
}

function formatCount(count: number): string {
  return count.toLocaleString('en-US');
}

/** Three significant digits from 100 up (48,712 → 48,700), whole numbers below. */
function formatRate(rate: number): string {
  return formatCount(rate >= 100 ? Number(rate.toPrecision(3)) : Math.round(rate));
}

/** `4.1s`, `2m 05s`, `1h 02m`. */
export function formatElapsed(ms: number): string {
  const seconds = ms / 1000;
  if (seconds < 59.95) return `${seconds.toFixed(1)}s`;
  return formatMinutes(Math.round(seconds));
}

/** Whole seconds, rounded up: `2s`, `2m 05s`, `1h 02m`; `?` until there is a rate. */
export function formatEta(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '?';
  const whole = Math.ceil(seconds);
  return whole < 60 ? `${whole}s` : formatMinutes(whole);
}

function formatMinutes(seconds: number): string {
  const pad = (value: number) => String(value).padStart(2, '0');
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${pad(seconds % 60)}s`;
  return `${Math.floor(seconds / 3600)}h ${pad(Math.floor((seconds % 3600) / 60))}m`;
}
