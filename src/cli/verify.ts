import { parseDuration } from '../config/duration.js';
import { loadConfig } from '../config/loadConfig.js';
import { OperationalError } from '../errors.js';
import { createLogger } from '../log.js';
import {
  ScratchBuildAborted,
  verifyProjection,
  type TableVerdict,
  type VerifyProgress,
  type VerifyResult,
} from '../operations/verifyProjection.js';
import { EXIT, type CommonOptions } from './main.js';
import { formatElapsed } from './replay.js';

export interface VerifyCommandOptions extends CommonOptions {
  json?: boolean;
  progressInterval?: string;
}

// Progress goes to stderr, so that stdout holds the verdict alone (and `--json` stays parseable).
const TERMINAL_PROGRESS_MS = 250;
const LOG_PROGRESS_MS = 2000;

/**
 * `projd verify <name>`: rebuilds the projection in a scratch schema and compares its tables
 * with the live ones. Exit 0 when every table is equal, 1 listing each difference. SIGINT
 * stops the build; the scratch schema is dropped before the process exits.
 */
export async function verifyCommand(name: string, options: VerifyCommandOptions): Promise<void> {
  const interval =
    options.progressInterval === undefined ? undefined : parseDuration(options.progressInterval, '--progress-interval');
  const config = await loadConfig({ file: options.config, env: process.env, cwd: process.cwd() });
  const logger = createLogger({ level: config.log.level === 'info' ? 'warn' : config.log.level });
  const terminal = Boolean(process.stderr.isTTY);
  const progress = createProgress(process.stderr, terminal);

  const interrupt = new AbortController();
  const onSignal = () => interrupt.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let result: VerifyResult;
  try {
    result = await verifyProjection(config, name, {
      logger,
      onProgress: progress.show,
      progressInterval: interval ?? (terminal ? TERMINAL_PROGRESS_MS : LOG_PROGRESS_MS),
      signal: interrupt.signal,
    });
  } catch (error) {
    if (error instanceof ScratchBuildAborted) {
      throw new OperationalError(`verify ${name}: interrupted; the scratch schema was dropped`);
    }
    throw error;
  } finally {
    progress.end();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  process.stdout.write(options.json ? `${JSON.stringify(result, null, 2)}\n` : renderVerifyResult(result));
  process.exitCode = result.equal ? EXIT.ok : EXIT.failed;
}

/** `verified balances: 2 tables equal to a rebuild of 1,000 events up to 0/812/1000 (0.4s)`, or the differences. */
export function renderVerifyResult(result: VerifyResult): string {
  const events = `${result.events.toLocaleString('en-US')} ${result.events === 1 ? 'event' : 'events'}`;
  const upTo = `up to ${result.checkpoints.join(', ')}`;
  const tables = (count: number) => `${count} ${count === 1 ? 'table' : 'tables'}`;
  if (result.equal) {
    return `verified ${result.projection}: ${tables(result.tables.length)} equal to a rebuild of ${events} ${upTo} (${formatElapsed(result.elapsedMs)})\n`;
  }
  const differing = result.tables.filter((table) => table.verdict !== 'equal');
  const lines = [
    `${result.projection}: ${differing.length} of ${tables(result.tables.length)} ${differing.length === 1 ? 'differs' : 'differ'} from a rebuild of ${events} ${upTo}`,
    ...differing.map((table) => `  ${formatDifference(table)}`),
  ];
  return `${lines.join('\n')}\n`;
}

function formatDifference(table: TableVerdict): string {
  const rebuilt = `rebuilt ${table.rebuilt.rows} rows (checksum ${table.rebuilt.checksum})`;
  switch (table.verdict) {
    case 'missing':
      return `${table.table}: no live table of that name; ${rebuilt}`;
    case 'moved':
      return `${table.table}: created by a handler, and the live projection moved on before it was read; run verify again`;
    case 'columns':
      return `${table.table}: other columns: live ${table.liveTable} (${table.liveColumns!.join(', ')}), rebuilt (${table.rebuiltColumns!.join(', ')})`;
    default:
      return `${table.table}: live ${table.liveTable} ${table.live!.rows} rows (checksum ${table.live!.checksum}), ${rebuilt}`;
  }
}

interface ProgressView {
  show(progress: VerifyProgress): void;
  /** Leaves the terminal on a fresh line. */
  end(): void;
}

function createProgress(out: NodeJS.WriteStream, terminal: boolean): ProgressView {
  let lineOpen = false;
  return {
    show(progress) {
      const percent = progress.total === 0 ? 100 : Math.min(100, Math.floor((progress.done * 100) / progress.total));
      const line = `verify ${progress.projection}: rebuilt ${progress.done.toLocaleString('en-US')} / ${progress.total.toLocaleString('en-US')} events  ${percent}%`;
      if (terminal) {
        // \r back to the line's start, ESC[K clears what a longer line left behind.
        out.write(`\r\x1b[K${line}`);
        lineOpen = true;
      } else if (!progress.finished && progress.done > 0) {
        out.write(`${line}\n`);
      }
    },
    end() {
      if (lineOpen) out.write('\r\x1b[K');
      lineOpen = false;
    },
  };
}
