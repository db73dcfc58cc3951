import { InvalidArgumentError } from 'commander';
import { loadConfig } from '../config/loadConfig.js';
import { parseDuration } from '../config/duration.js';
import { OperationalError } from '../errors.js';
import { waitInStore } from '../operations/waitInStore.js';
import { timedOutText } from '../wait/describeWait.js';
import { parsePosition } from '../wait/parsePosition.js';
import { EXIT, type CommonOptions } from './main.js';

export interface WaitCommandOptions extends CommonOptions {
  position: bigint;
  timeout?: string;
  json?: boolean;
}

/** `--position`: an event's position, an integer from 1. */
export function parsePositionFlag(value: string): bigint {
  try {
    return parsePosition(value, '--position');
  } catch {
    throw new InvalidArgumentError("Expected an event's position, an integer from 1, as projd append prints it.");
  }
}

/**
 * `projd wait <name…> --position P`: exits 0 once every named projection has applied (or
 * passed) the event at P, 1 at the timeout naming those still behind, 2 for bad input.
 */
export async function waitCommand(projections: string[], options: WaitCommandOptions): Promise<void> {
  const timeoutMs = parseDuration(options.timeout ?? '5s', '--timeout');
  const config = await loadConfig({ file: options.config, env: process.env, cwd: process.cwd() });
  const names = [...new Set(projections)];
  const outcome = await waitInStore(config, { projections: names, position: options.position, timeoutMs });
  if (options.json) {
    const behind = outcome.kind === 'timed_out'
      ? outcome.behind.map(({ projection, part, checkpoint }) => ({
          projection,
          part,
          checkpoint: checkpoint && `${checkpoint.era}/${checkpoint.transactionId}/${checkpoint.position}`,
        }))
      : [];
    const applied = outcome.kind === 'applied';
    process.stdout.write(`${JSON.stringify({ applied, position: String(options.position), projections: names, waitedMs: outcome.waitedMs, behind })}\n`);
    if (!applied) process.exitCode = EXIT.failed;
    return;
  }
  if (outcome.kind === 'timed_out') throw new OperationalError(`wait: ${timedOutText(outcome, timeoutMs)}`);
  process.stdout.write(`applied: ${names.join(', ')} at position ${options.position} (${outcome.waitedMs} ms)\n`);
}
