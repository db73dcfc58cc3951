import { Command, CommanderError, Option } from 'commander';
import { errorMessage, isUserError } from '../errors.js';
import { migrateCommand } from './migrate.js';
import { runCommand } from './run.js';

/** Exit codes, as the contract fixes them. */
export const EXIT = { ok: 0, failed: 1, usage: 2, internal: 3 } as const;

export interface CommonOptions {
  config?: string;
}

function configOption(): Option {
  return new Option('-c, --config <file>', 'config file (default: ./projd.yaml if present)');
}

export function buildProgram(): Command {
  const program = new Command('projd')
    .description('Projection daemon for PostgreSQL event stores')
    .showSuggestionAfterError()
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
    .action((options: CommonOptions) => migrateCommand(options));

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
  process.stderr.write(`projd: internal error: ${error instanceof Error ? error.stack : String(error)}\n`);
  return EXIT.internal;
}
