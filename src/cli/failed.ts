import { listFailed, retryFailed, skipFailed } from '../operations/failedEvents.js';
import { loadConfig } from '../config/loadConfig.js';
import { UserError } from '../errors.js';
import type { ResolveOutcome } from '../runner/resolveFailedEvents.js';
import type { FailedEvent } from '../store/failedEvents.js';
import { EXIT, type CommonOptions } from './main.js';
import { renderTable, type TableColumn } from './render.js';

export interface FailedListOptions extends CommonOptions {
  projection?: string;
  all?: boolean;
  json?: boolean;
}

export interface FailedRetryOptions extends CommonOptions {
  projection?: string;
  all?: boolean;
}

const LIST_COLUMNS: readonly TableColumn<FailedEvent>[] = [
  { title: 'ID', align: 'right', cell: (event) => String(event.id) },
  { title: 'PROJECTION', align: 'left', cell: (event) => event.projection },
  { title: 'POSITION', align: 'right', cell: (event) => String(event.position) },
  {
    title: 'STREAM',
    align: 'left',
    cell: (event) => (event.part ? `${event.streamId} (part ${event.part.index}/${event.part.count})` : event.streamId),
  },
  { title: 'TYPE', align: 'left', cell: (event) => event.type },
  { title: 'ATTEMPTS', align: 'right', cell: (event) => String(event.attempts) },
  { title: 'STATUS', align: 'left', cell: (event) => event.status },
  { title: 'LAST FAILED', align: 'left', cell: (event) => event.lastFailedAt.toISOString() },
  { title: 'ERROR', align: 'left', cell: (event) => errorText(event) },
];

/** `projd failed list`: a table, or with `--json` an array (64-bit values as strings). */
export async function failedListCommand(options: FailedListOptions): Promise<void> {
  const config = await loadConfig({ file: options.config, env: process.env, cwd: process.cwd() });
  const events = await listFailed(config, {
    ...(options.projection === undefined ? {} : { projection: options.projection }),
    all: options.all ?? false,
  });
  if (options.json) {
    process.stdout.write(`${JSON.stringify(events.map(toJson), null, 2)}\n`);
    return;
  }
  process.stdout.write(events.length === 0 ? 'no parked events\n' : renderTable(LIST_COLUMNS, events));
}

/** `projd failed retry <id…> | --all`: exit 1 when any event failed again. */
export async function failedRetryCommand(ids: string[], options: FailedRetryOptions): Promise<void> {
  if ((ids.length > 0) === Boolean(options.all)) {
    throw new UserError('failed retry: give the ids of parked events, or --all (not both)');
  }
  if (options.projection !== undefined && !options.all) {
    throw new UserError('failed retry: --projection goes with --all');
  }
  const config = await loadConfig({ file: options.config, env: process.env, cwd: process.cwd() });
  const outcomes = await retryFailed(config, options.all ? 'all' : parseIds(ids), {
    ...(options.projection === undefined ? {} : { projection: options.projection }),
  });
  report(outcomes);
}

/** `projd failed skip <id…>`. */
export async function failedSkipCommand(ids: string[], options: CommonOptions): Promise<void> {
  const config = await loadConfig({ file: options.config, env: process.env, cwd: process.cwd() });
  report(await skipFailed(config, parseIds(ids)));
}

function parseIds(ids: readonly string[]): bigint[] {
  return ids.map((id) => {
    if (!/^[1-9]\d{0,18}$/.test(id)) throw new UserError(`'${id}' is not the id of a failed event (see projd failed list)`);
    return BigInt(id);
  });
}

/** One line per event; events that failed again exit 1. (Unknown ids were refused before any was touched.) */
function report(outcomes: readonly ResolveOutcome[]): void {
  for (const outcome of outcomes) {
    switch (outcome.outcome) {
      case 'retried':
      case 'skipped': {
        const { projection, position } = outcome.event;
        const resumed = outcome.unblocked ? `; projection '${projection}' runs again` : '';
        process.stdout.write(`${outcome.outcome} ${outcome.id} (${projection} at position ${position})${resumed}\n`);
        break;
      }
      case 'failed':
        process.stdout.write(`failed again ${outcome.id}: ${outcome.error}\n`);
        process.exitCode = EXIT.failed;
        break;
      case 'not_parked':
        process.stdout.write(`left ${outcome.id}: it is ${outcome.status ?? 'gone'}, not parked\n`);
        break;
    }
  }
  if (outcomes.length === 0) process.stdout.write('no parked events\n');
}

function errorText(event: FailedEvent): string {
  const message = event.errorMessage.split('\n', 1)[0]!;
  return event.errorCode ? `${event.errorCode} ${message}` : message;
}

function toJson(event: FailedEvent) {
  return { ...event, id: String(event.id), position: String(event.position), transactionId: String(event.transactionId) };
}
