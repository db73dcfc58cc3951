import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { errorMessage, isOperationalError, isUserError } from '../errors.js';
import { appendCommand, parseExpectedVersion, type AppendCommandOptions } from './append.js';
import {
  failedListCommand,
  failedRetryCommand,
  failedSkipCommand,
  type FailedListOptions,
  type FailedRetryOptions,
} from './failed.js';
import { migrateCommand, type MigrateOptions } from './migrate.js';
import { queryCommand, type QueryCommandOptions } from './query.js';
import { replayCommand, type ReplayCommandOptions } from './replay.js';
import { runCommand } from './run.js';
import { statusCommand, type StatusCommandOptions } from './status.js';
import { verifyCommand, type VerifyCommandOptions } from './verify.js';
import { parsePositionFlag, waitCommand, type WaitCommandOptions } from './wait.js';

/** Exit codes, as the contract fixes them. */
export const EXIT = { ok: 0, failed: 1, usage: 2, internal: 3 } as const;

export interface CommonOptions {
  config?: string;
}

function configOption(): Option {
  return new Option('-c, --config <file>', 'config file (default: ./projd.yaml if present)');
}

/** The version in package.json: from src/cli/ and from dist/cli/ alike, it is two folders up. */
function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return manifest.version;
}

/**
 * Commander's own errors ("error: unknown option '--bogus'") as projd's: `projd: ` first, and on
 * one line, though commander puts its "(Did you mean run?)" on a line of its own.
 */
export function formatCommanderError(message: string): string {
  return `projd: ${message.trim().replace(/^error:\s*/, '').replace(/\s*\n\s*/g, ' ')}\n`;
}

export function buildProgram(): Command {
  const program = new Command('projd')
    .description('Projection daemon for PostgreSQL event stores')
    .version(packageVersion(), '-V, --version', 'print the version')
    .showSuggestionAfterError()
    .configureOutput({ outputError: (message, write) => write(formatCommanderError(message)) })
    .exitOverride();

  program
    .command('run')
    .description('migrate, load projections, catch up and stay live until SIGINT/SIGTERM')
    .addOption(configOption())
    .action((options: CommonOptions) => runCommand(options));

  program
    .command('migrate')
    .description("create or upgrade projd's tables (idempotent)")
    .addOption(configOption())
    .option('--new-era', 'after restoring the store into another cluster: order what it holds before anything new')
    .option('--adopt', "make projd read the application's own events table (the config's events section)")
    .action((options: MigrateOptions) => migrateCommand(options));

  program
    .command('status')
    .description('one row per projection: state, position, lag, parked events, owner')
    .addOption(configOption())
    .option('--json', 'print a JSON array, one object per projection')
    .option('--check', 'exit 1 when a projection is failed, stalled, lags more than health.maxLag, or does not match its checkpoint (version, handlers)')
    .action((options: StatusCommandOptions) => statusCommand(options));

  program
    .command('replay')
    .description('clear a projection and rebuild it from position 0; exits once caught up')
    .argument('[name]', 'the projection to replay')
    .option('--all', 'replay every projection, one after the other')
    .option('--progress-interval <duration>', 'time between progress reports (default: 250ms on a terminal, else 2s)')
    .addOption(configOption())
    .action((name: string | undefined, options: ReplayCommandOptions) => replayCommand(name, options));

  program
    .command('verify')
    .description('rebuild a projection in a scratch schema up to its checkpoint and compare its tables with the live ones')
    .argument('<name>', 'the projection to verify')
    .option('--json', 'print the result as JSON')
    .option('--progress-interval <duration>', 'time between progress reports on stderr (default: 250ms on a terminal, else 2s)')
    .addOption(configOption())
    .action((name: string, options: VerifyCommandOptions) => verifyCommand(name, options));

  program
    .command('append')
    .description('append events to the end of a stream: one from the arguments, or NDJSON lines from stdin')
    .argument('<stream>', 'the stream id, e.g. account-1')
    .argument('[type]', 'the event type, e.g. account.opened; without it, events are read from stdin')
    .argument('[data]', "the event's data as JSON (default: {})")
    .option('--expected-version <version>', 'append only if the stream is at this version (0: no events yet), or any, no_stream, stream_exists', parseExpectedVersion)
    .option('--json', 'print one JSON object per appended event')
    .addOption(configOption())
    .action((stream: string, type: string | undefined, data: string | undefined, options: AppendCommandOptions) =>
      appendCommand(stream, type, data, options),
    );

  program
    .command('query')
    .description('run one SQL statement in a read-only transaction and print its rows, e.g. to look at a read model')
    .argument('<sql>', "the statement, e.g. 'select * from balances'")
    .option('--json', 'print a JSON array, one object per row')
    .addOption(configOption())
    .action((sql: string, options: QueryCommandOptions) => queryCommand(sql, options));

  program
    .command('wait')
    .description('wait until projections have applied (or passed) the event at a position: read your own writes')
    .argument('<names...>', 'the projections')
    .requiredOption('--position <position>', 'the event\'s position, as `append` prints it', parsePositionFlag)
    .option('--timeout <duration>', 'how long to wait, e.g. 500ms or 5s (default: 5s)')
    .option('--json', 'print one JSON object')
    .addOption(configOption())
    .action((names: string[], options: WaitCommandOptions) => waitCommand(names, options));

  const failed = program.command('failed').description('inspect and act on parked events');
  failed
    .command('list')
    .description('list parked events (with --all, retried and skipped ones too)')
    .addOption(configOption())
    .option('-p, --projection <name>', 'only this projection')
    .option('--all', 'include retried and skipped events')
    .option('--json', 'print JSON')
    .action((options: FailedListOptions) => failedListCommand(options));
  failed
    .command('retry')
    .description('apply parked events again through the current handlers')
    .argument('[ids...]', 'ids from projd failed list')
    .addOption(configOption())
    .option('--all', 'every parked event')
    .option('-p, --projection <name>', 'with --all: only this projection')
    .action((ids: string[], options: FailedRetryOptions) => failedRetryCommand(ids, options));
  failed
    .command('skip')
    .description('give up on parked events; a projection halted on one goes on past it')
    .argument('<ids...>', 'ids from projd failed list')
    .addOption(configOption())
    .action((ids: string[], options: CommonOptions) => failedSkipCommand(ids, options));
  for (const command of failed.commands) command.exitOverride();

  // Subcommands inherit exitOverride only when it is set before they are added.
  for (const command of program.commands) command.exitOverride();
  return program;
}

/** Runs the CLI and sets `process.exitCode`; never calls `process.exit`, so piped output is not cut. */
export async function main(argv: readonly string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv as string[]);
  } catch (error) {
    process.exitCode = exitCodeFor(error);
  }
}

function exitCodeFor(error: unknown): number {
  if (error instanceof CommanderError) {
    // Commander has printed its message already; help and version exit 0.
    return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
  if (isUserError(error)) {
    process.stderr.write(`projd: ${errorMessage(error).replace(/\s*\n\s*/g, ' ')}\n`);
    return EXIT.usage;
  }
  if (isOperationalError(error)) {
    process.stderr.write(`projd: ${errorMessage(error).replace(/\s*\n\s*/g, ' ')}\n`);
    return EXIT.failed;
  }
  process.stderr.write(`projd: internal error: ${error instanceof Error ? error.stack : String(error)}\n`);
  return EXIT.internal;
}
