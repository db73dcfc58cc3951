import { UserError } from '../errors.js';
import { ON_ERROR_POLICIES, type OnErrorPolicy } from '../onErrorPolicies.js';
import { describeValue, didYouMean, editDistance } from '../text.js';
import { eventTypeKeyProblem } from './handlerFor.js';
import { checkUpcasters, type UpcasterKind } from './upcasters.js';
import {
  PROJECTION_KIND,
  type BatchHandler,
  type EventDataMap,
  type EventHandler,
  type Projection,
  type ProjectionDefinition,
} from './types.js';

const NAME_PATTERN = /^[a-z][a-z0-9_]*$/;
/** PostgreSQL cuts identifiers at 63 bytes, and a projection's name often names its table. */
const MAX_NAME_LENGTH = 63;
/** `projd.checkpoints.version` is an `integer`. */
const MAX_VERSION = 2_147_483_647;
const DEFINITION_KEYS: readonly string[] = [
  'name',
  'version',
  'setup',
  'reset',
  'eventTypes',
  'handlers',
  'batch',
  'handleBatch',
  'upcasters',
  'batchSize',
  'onError',
  'maxAttempts',
  'partitions',
];
const MAX_ATTEMPTS = 100;
/** As `projections.batchSize`. */
const MAX_BATCH_SIZE = 100_000;
/** `projd.checkpoints` allows parts 0 to 255. */
export const MAX_PARTITIONS = 256;

/**
 * The outcome of checking a definition. A failure carries the key path at fault
 * (`['handlers', 'account.credited']`), so a YAML file can point at its line, and a
 * message that already names the projection.
 */
export type DefinitionCheck =
  | { ok: true; projection: Projection }
  | { ok: false; path: readonly string[]; message: string };

/**
 * Checks and normalizes a projection definition. The result is frozen and branded with
 * `kind: PROJECTION_KIND`, a plain string, so the loader recognises it even when the module
 * was built against another copy of projd.
 *
 * `Events` maps event types to the type of their `data`, so handlers need no annotations:
 * `defineProjection<{ 'account.credited': { amount: number } }>({ … })`. Without it, a handler's
 * `event.data` is `unknown` unless its parameter is annotated.
 *
 * @throws UserError naming the projection and the key at fault, e.g.
 *   `projection 'balances': version must be a positive integer, got "1"`.
 */
export function defineProjection<Events extends EventDataMap = {}>(
  definition: ProjectionDefinition<NoInfer<Events>>,
): Projection {
  const check = checkProjectionDefinition(definition);
  if (!check.ok) throw new UserError(check.message);
  return check.projection;
}

export interface CheckDefinitionOptions {
  /** What an upcaster is: a function in a module, a SQL expression in a YAML file. @defaultValue 'function' */
  upcasters?: UpcasterKind;
}

/** `defineProjection` without the throw: for callers that add their own context (file, line). */
export function checkProjectionDefinition(value: unknown, options: CheckDefinitionOptions = {}): DefinitionCheck {
  if (!isPlainObject(value)) {
    return { ok: false, path: [], message: `projection: definition must be an object, got ${describeValue(value)}` };
  }
  const label = typeof value.name === 'string' && value.name !== '' ? `projection '${value.name}'` : 'projection';
  const fail = (path: readonly string[], problem: string): DefinitionCheck => ({
    ok: false,
    path,
    message: `${label}: ${problem}`,
  });

  for (const key of Object.keys(value)) {
    if (DEFINITION_KEYS.includes(key)) continue;
    return fail([key], `unknown key '${key}'${didYouMean(closestKey(key))}; the keys are ${DEFINITION_KEYS.join(', ')}`);
  }

  const { name, version, setup, reset, handlers, onError, maxAttempts, batchSize, partitions = 1 } = value;
  if (name === undefined) return fail(['name'], 'name is required');
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    return fail(['name'], `name must match [a-z][a-z0-9_]* (lowercase letters, digits, _), got ${describeValue(name)}`);
  }
  if (name.length > MAX_NAME_LENGTH) {
    return fail(['name'], `name must be at most ${MAX_NAME_LENGTH} characters, got ${name.length}`);
  }

  if (version === undefined) return fail(['version'], 'version is required');
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) {
    return fail(['version'], `version must be a positive integer, got ${describeValue(version)}`);
  }
  if (version > MAX_VERSION) return fail(['version'], `version must be at most ${MAX_VERSION}, got ${version}`);

  if (onError !== undefined && !ON_ERROR_POLICIES.some((policy) => policy === onError)) {
    return fail(['onError'], `onError must be ${ON_ERROR_POLICIES.map((policy) => `'${policy}'`).join(' or ')}, got ${describeValue(onError)}`);
  }
  if (
    maxAttempts !== undefined &&
    (typeof maxAttempts !== 'number' || !Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > MAX_ATTEMPTS)
  ) {
    return fail(['maxAttempts'], `maxAttempts must be an integer from 1 to ${MAX_ATTEMPTS}, got ${describeValue(maxAttempts)}`);
  }

  if (
    batchSize !== undefined &&
    (typeof batchSize !== 'number' || !Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH_SIZE)
  ) {
    return fail(['batchSize'], `batchSize must be an integer from 1 to ${MAX_BATCH_SIZE}, got ${describeValue(batchSize)}`);
  }

  if (
    typeof partitions !== 'number' ||
    !Number.isInteger(partitions) ||
    partitions < 1 ||
    partitions > MAX_PARTITIONS
  ) {
    return fail(['partitions'], `partitions must be an integer from 1 to ${MAX_PARTITIONS}, got ${describeValue(partitions)}`);
  }

  const statements: Record<'setup' | 'reset' | 'batch', readonly string[]> = { setup: [], reset: [], batch: [] };
  for (const [key, sql] of [['setup', setup], ['reset', reset], ['batch', value.batch]] as const) {
    const normalized = normalizeStatements(sql);
    if (!normalized.ok) {
      const path = normalized.index === undefined ? [key] : [key, String(normalized.index)];
      return fail(path, `${key}${normalized.problem}`);
    }
    statements[key] = normalized.statements;
  }

  const { handleBatch } = value;
  if (handleBatch !== undefined && typeof handleBatch !== 'function') {
    return fail(['handleBatch'], `handleBatch must be a function (events, db), got ${describeValue(handleBatch)}`);
  }
  if (value.batch !== undefined && handleBatch !== undefined) {
    return fail(['handleBatch'], 'give batch (SQL) or handleBatch (a function), not both');
  }
  const hasBatchForm = value.batch !== undefined || handleBatch !== undefined;

  const checkedHandlers = checkHandlers(handlers, hasBatchForm);
  if (!checkedHandlers.ok) return fail(checkedHandlers.path, checkedHandlers.problem);
  const handlerMap = checkedHandlers.handlers;

  const checkedTypes = checkEventTypes(value.eventTypes, handlerMap, hasBatchForm);
  if (!checkedTypes.ok) return fail(checkedTypes.path, checkedTypes.problem);
  const { eventTypes } = checkedTypes;

  const upcasterKind = options.upcasters ?? 'function';
  const checkedUpcasters = checkUpcasters(value.upcasters, eventTypes, upcasterKind);
  if (!checkedUpcasters.ok) return fail(checkedUpcasters.path, checkedUpcasters.problem);
  const { upcasters } = checkedUpcasters;
  if (upcasters.size > 0 && upcasterKind === 'function' && value.batch !== undefined) {
    // batch SQL reads its events in place, where no function can reach them.
    return fail(['upcasters'], 'upcasters are functions, which batch SQL cannot apply: lift the data in the batch SQL, or use handleBatch');
  }

  const projection: Projection = Object.freeze({
    kind: PROJECTION_KIND,
    name,
    version,
    setup: Object.freeze([...statements.setup]),
    reset: Object.freeze([...statements.reset]),
    handlers: handlerMap,
    eventTypes: Object.freeze(eventTypes),
    ...(statements.batch.length === 0 ? {} : { batch: Object.freeze([...statements.batch]) }),
    ...(handleBatch === undefined ? {} : { handleBatch: handleBatch as BatchHandler }),
    ...(upcasters.size === 0 ? {} : { upcasters }),
    ...(batchSize === undefined ? {} : { batchSize: batchSize as number }),
    ...(onError === undefined ? {} : { onError: onError as OnErrorPolicy }),
    ...(maxAttempts === undefined ? {} : { maxAttempts: maxAttempts as number }),
    partitions,
  });
  return { ok: true, projection };
}

type KeyProblem = { ok: false; path: readonly string[]; problem: string };

/** The per-event handlers, by key; none is fine when a batch form takes the events. */
function checkHandlers(
  handlers: unknown,
  hasBatchForm: boolean,
): { ok: true; handlers: Map<string, EventHandler> } | KeyProblem {
  const handlerMap = new Map<string, EventHandler>();
  if (handlers === undefined) {
    if (hasBatchForm) return { ok: true, handlers: handlerMap };
    return { ok: false, path: ['handlers'], problem: 'handlers is required (or a batch form: batch or handleBatch)' };
  }
  if (!isPlainObject(handlers)) {
    return { ok: false, path: ['handlers'], problem: `handlers must be an object of event type → function, got ${describeValue(handlers)}` };
  }
  const keys = Object.keys(handlers).sort();
  if (keys.length === 0) return { ok: false, path: ['handlers'], problem: 'handlers must name at least one event type' };
  for (const eventType of keys) {
    const keyProblem = eventTypeProblem(eventType, 'handlers');
    if (keyProblem !== null) return { ok: false, path: ['handlers', eventType], problem: keyProblem };
    const handler = handlers[eventType];
    if (typeof handler !== 'function') {
      return {
        ok: false,
        path: ['handlers', eventType],
        problem: `handler for '${eventType}' must be a function, got ${describeValue(handler)}`,
      };
    }
    handlerMap.set(eventType, handler as EventHandler);
  }
  return { ok: true, handlers: handlerMap };
}

/**
 * The types the projection reads, sorted: `eventTypes` as given, else the handlers' keys.
 * Every handler key must be listed (a handler of a type never read would silently do nothing),
 * and without a batch form every listed type needs a handler to go to.
 */
function checkEventTypes(
  value: unknown,
  handlers: ReadonlyMap<string, EventHandler>,
  hasBatchForm: boolean,
): { ok: true; eventTypes: string[] } | KeyProblem {
  if (value === undefined) {
    if (handlers.size > 0) return { ok: true, eventTypes: [...handlers.keys()] };
    return { ok: false, path: ['eventTypes'], problem: 'eventTypes is required when there are no handlers: the event types the batch reads' };
  }
  if (!Array.isArray(value) || value.length === 0) {
    return { ok: false, path: ['eventTypes'], problem: `eventTypes must be a non-empty list of event types, got ${describeValue(value)}` };
  }
  for (const [index, item] of value.entries()) {
    if (typeof item !== 'string') {
      return { ok: false, path: ['eventTypes', String(index)], problem: `eventTypes[${index}] must be a string, got ${describeValue(item)}` };
    }
    const problem = eventTypeProblem(item, 'eventTypes');
    if (problem !== null) return { ok: false, path: ['eventTypes', String(index)], problem };
    if (value.indexOf(item) !== index) {
      return { ok: false, path: ['eventTypes', String(index)], problem: `eventTypes lists '${item}' twice` };
    }
  }
  const eventTypes = [...(value as string[])].sort();
  for (const key of handlers.keys()) {
    if (!eventTypes.includes(key)) {
      return { ok: false, path: ['handlers', key], problem: `handler for '${key}' is not listed in eventTypes (${eventTypes.join(', ')})` };
    }
  }
  if (!hasBatchForm) {
    const unhandled = eventTypes.find((type) => !handlers.has(type));
    if (unhandled !== undefined) {
      return {
        ok: false,
        path: ['eventTypes', String(value.indexOf(unhandled))],
        problem: `eventTypes lists '${unhandled}', which has no handler (and there is no batch form)`,
      };
    }
  }
  return { ok: true, eventTypes };
}

/** Null when `type` is a valid event type or pattern; else what is wrong, for a message. */
function eventTypeProblem(type: string, key: 'handlers' | 'eventTypes'): string | null {
  if (type.trim() === '') return `${key} has an empty event type`;
  if (type.trim() !== type) return `event type ${JSON.stringify(type)} has leading or trailing spaces`;
  return eventTypeKeyProblem(type);
}

/** Whether a value is a projection checked by (any copy of) `defineProjection`. */
export function isProjection(value: unknown): value is Projection {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === PROJECTION_KIND;
}

type NormalizedStatements =
  | { ok: true; statements: readonly string[] }
  | { ok: false; index?: number; problem: string };

function normalizeStatements(value: unknown): NormalizedStatements {
  if (value === undefined) return { ok: true, statements: [] };
  if (typeof value === 'string') {
    return value.trim() === '' ? { ok: false, problem: ' must not be empty' } : { ok: true, statements: [value] };
  }
  if (!Array.isArray(value)) {
    return { ok: false, problem: ` must be a SQL string or a list of SQL strings, got ${describeValue(value)}` };
  }
  for (const [index, item] of value.entries()) {
    if (typeof item !== 'string' || item.trim() === '') {
      return { ok: false, index, problem: `[${index}] must be a non-empty SQL string, got ${describeValue(item)}` };
    }
  }
  return { ok: true, statements: value as string[] };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** The known key a typo most likely meant: at most two edits away. */
function closestKey(key: string): string | undefined {
  let best: { key: string; distance: number } | undefined;
  for (const candidate of DEFINITION_KEYS) {
    // Plain edits, no swaps: the suggestions definitions have always made.
    const distance = editDistance(key.toLowerCase(), candidate, { swaps: false });
    if (distance <= 2 && (best === undefined || distance < best.distance)) best = { key: candidate, distance };
  }
  return best?.key;
}
