import readline from 'node:readline';
import type { Readable } from 'node:stream';
import { InvalidArgumentError } from 'commander';
import {
  appendToStream,
  isVersionConflictError,
  type AppendResult,
  type ExpectedVersion,
  type NewEvent,
} from '../operations/appendToStream.js';
import { loadConfig } from '../config/loadConfig.js';
import { OperationalError, UserError, errorMessage } from '../errors.js';
import type { CommonOptions } from './main.js';

export interface AppendCommandOptions extends CommonOptions {
  expectedVersion?: ExpectedVersion;
  json?: boolean;
}

/** The keys of an NDJSON line; `metadata` and `schemaVersion` are optional. */
const EVENT_KEYS = ['type', 'data', 'metadata', 'schemaVersion'];
const NDJSON_EXAMPLE = '{"type": "account.credited", "data": {"amount": 100}}';

/**
 * `projd append <stream> <type> [data]`: one event; `projd append <stream>`: NDJSON events on
 * stdin, one per line. Every input is checked before anything is written, and the events go in
 * as one statement: all or none. One line per appended event.
 */
export async function appendCommand(
  streamId: string,
  type: string | undefined,
  data: string | undefined,
  options: AppendCommandOptions,
): Promise<void> {
  if (streamId === '') throw new UserError('append: the stream id is empty');
  const events = type === undefined ? await readEventLines(process.stdin) : [singleEvent(type, data)];
  const config = await loadConfig({ file: options.config, env: process.env, cwd: process.cwd() });
  let result: AppendResult;
  try {
    const expected = options.expectedVersion === undefined ? {} : { expectedVersion: options.expectedVersion };
    result = await appendToStream(config, streamId, events, expected);
  } catch (error) {
    // Someone else wrote to the stream: nothing is wrong with the input, so exit 1, not 2.
    if (isVersionConflictError(error)) throw new OperationalError(`append: ${error.message}`, { cause: error });
    throw error;
  }
  process.stdout.write(renderAppended(streamId, events, result, options.json === true));
}

/** `--expected-version`: a stream version (0: no events yet), or `any`, `no_stream`, `stream_exists`. */
export function parseExpectedVersion(value: string): ExpectedVersion {
  if (value === 'any' || value === 'no_stream' || value === 'stream_exists') return value;
  if (/^\d+$/.test(value) && Number(value) <= 2_147_483_647) return Number(value);
  throw new InvalidArgumentError('Expected a stream version (0, 1, 2, …), any, no_stream or stream_exists.');
}

function singleEvent(type: string, data: string | undefined): NewEvent {
  if (type === '') throw new UserError('append: the event type is empty');
  if (data === undefined) return { type, data: {} };
  return { type, data: parseJson(data, `append: data ${quote(data)}`) };
}

/** NDJSON from `input`, one event per line; blank lines are skipped. */
async function readEventLines(input: Readable & { isTTY?: boolean }): Promise<NewEvent[]> {
  if (input.isTTY) {
    throw new UserError(`append: no event type given and stdin is a terminal: give <type> [data], or pipe events in, one per line: ${NDJSON_EXAMPLE}`);
  }
  const events: NewEvent[] = [];
  let lineNumber = 0;
  for await (const line of readline.createInterface({ input, crlfDelay: Infinity })) {
    lineNumber += 1;
    if (line.trim() === '') continue;
    events.push(eventFromLine(parseJson(line, `append: stdin line ${lineNumber}`), `append: stdin line ${lineNumber}`));
  }
  if (events.length === 0) throw new UserError(`append: no events on stdin; give one per line: ${NDJSON_EXAMPLE}`);
  return events;
}

function eventFromLine(value: unknown, where: string): NewEvent {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UserError(`${where}: expected an object such as ${NDJSON_EXAMPLE}`);
  }
  const line = value as Record<string, unknown>;
  const unknown = Object.keys(line).find((key) => !EVENT_KEYS.includes(key));
  if (unknown !== undefined) throw new UserError(`${where}: unknown key '${unknown}'; the keys are ${EVENT_KEYS.join(', ')}`);
  if (typeof line.type !== 'string' || line.type === '') throw new UserError(`${where}: 'type' must be a non-empty string`);
  if (!('data' in line)) throw new UserError(`${where}: 'data' is missing`);
  const { metadata, schemaVersion } = line;
  if (metadata !== undefined && (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))) {
    throw new UserError(`${where}: 'metadata' must be an object`);
  }
  if (schemaVersion !== undefined && !(Number.isInteger(schemaVersion) && (schemaVersion as number) >= 1)) {
    throw new UserError(`${where}: 'schemaVersion' must be a positive integer`);
  }
  return {
    type: line.type,
    data: line.data,
    ...(metadata === undefined ? {} : { metadata: metadata as Record<string, unknown> }),
    ...(schemaVersion === undefined ? {} : { schemaVersion: schemaVersion as number }),
  };
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UserError(`${where}: invalid JSON: ${errorMessage(error)}`);
  }
}

/** One line per event: `appended account-1@2 (account.credited) at position 17`, or a JSON object. */
export function renderAppended(streamId: string, events: readonly NewEvent[], result: AppendResult, json: boolean): string {
  const lines = events.map((event, i) => {
    const streamVersion = result.streamVersions[i]!;
    const position = result.positions[i]!;
    if (!json) return `appended ${streamId}@${streamVersion} (${event.type}) at position ${position}`;
    const transactionId = result.transactionId.toString();
    return JSON.stringify({ streamId, streamVersion, type: event.type, position: position.toString(), transactionId });
  });
  return `${lines.join('\n')}\n`;
}

function quote(text: string): string {
  return text.length > 40 ? `'${text.slice(0, 40)}…'` : `'${text}'`;
}
