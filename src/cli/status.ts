import { readStatus } from '../operations/readStatus.js';
import { loadConfig } from '../config/loadConfig.js';
import type { ProjectionStatus } from '../status/readStatusReport.js';
import type { CommonOptions } from './main.js';
import { formatSeconds, formatStall, renderStatusTable } from './render.js';

export interface StatusCommandOptions extends CommonOptions {
  json?: boolean;
  check?: boolean;
}

/**
 * `projd status`: one row per loaded projection, read from the tables, so it works with no
 * daemon running. A projection file that cannot be loaded is named on stderr and left out; the
 * others are still reported. `--check` exits 1 when a projection needs someone to look at it,
 * or a file cannot be loaded (a daemon started now would refuse to run).
 */
export async function statusCommand(options: StatusCommandOptions): Promise<void> {
  const config = await loadConfig({ file: options.config, env: process.env, cwd: process.cwd() });
  const refused: string[] = [];
  const statuses = await readStatus(config, { onRefusedFile: (error) => refused.push(error.message) });
  const checkFailed = options.check ? 'check failed: ' : '';
  for (const problem of refused) process.stderr.write(`projd: ${checkFailed}left out of the report: ${problem}\n`);
  if (options.json) {
    process.stdout.write(`${JSON.stringify(statuses, null, 2)}\n`);
  } else if (statuses.length === 0) {
    process.stdout.write(`projd: no projections in ${config.projections.dir}\n`);
  } else {
    process.stdout.write(renderStatusTable(statuses));
  }
  if (options.check) {
    const check = { maxLagMs: config.health.maxLag };
    for (const problem of checkProblems(statuses, check)) process.stderr.write(`projd: check failed: ${problem}\n`);
    process.exitCode = refused.length > 0 ? 1 : getExitCode(statuses, check);
  }
}

export interface CheckOptions {
  /** `health.maxLag`, in ms. */
  maxLagMs: number;
}

/**
 * What `--check` fails on, one line per projection: a `problem` (a version older than the
 * store's, handlers changed without a version bump), failed, stalled, or lagging past `maxLagMs`.
 */
export function checkProblems(statuses: readonly ProjectionStatus[], options: CheckOptions): string[] {
  const problems: string[] = [];
  for (const status of statuses) {
    if (status.problem !== null) {
      problems.push(`projection '${status.name}': ${status.problem}`);
    } else if (status.state === 'failed') {
      problems.push(`projection '${status.name}' is failed: stopped at failed event ${status.blockedBy ?? '?'}`);
    } else if (status.state === 'stalled') {
      problems.push(`projection '${status.name}' is stalled: ${formatStall(status.stalledBy)}`);
    } else if (status.lagSeconds * 1000 > options.maxLagMs) {
      const limit = formatSeconds(options.maxLagMs / 1000);
      problems.push(`projection '${status.name}' lags ${formatSeconds(status.lagSeconds)}, more than health.maxLag (${limit})`);
    }
  }
  return problems;
}

/** `status --check`'s exit code: 1 when any projection has a problem, is failed, stalled or lags too far, else 0. */
export function getExitCode(statuses: readonly ProjectionStatus[], options: CheckOptions): 0 | 1 {
  return checkProblems(statuses, options).length === 0 ? 0 : 1;
}
