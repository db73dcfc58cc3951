import { describeValue } from '../text.js';
import { readsEventType } from './handlerFor.js';
import type { ProjdEvent, Projection, Upcaster } from './types.js';

/** `projd.checkpoints.version` and `projd.events.schema_version` are `integer`s. */
const MAX_SCHEMA_VERSION = 2_147_483_646;
/** A version key as written: `1`, `2`, … (no sign, no leading zero, no fraction). */
const VERSION_KEY = /^[1-9][0-9]*$/;

/**
 * One event type's upcasters: `steps[i]` lifts `data` from version `lowest + i` to the next,
 * so events from `lowest` to `current` have a path up. A module's steps are functions; a YAML
 * projection's are SQL expressions over `data`, compiled into its statements.
 */
export interface TypeUpcasters {
  readonly lowest: number;
  /** One past the highest key: what handlers see as `schemaVersion`. */
  readonly current: number;
  readonly steps: readonly (Upcaster | string)[];
}

/** The kind of step a source may give: functions in a module, SQL in a YAML file. */
export type UpcasterKind = 'function' | 'sql';

type Checked = { ok: true; upcasters: ReadonlyMap<string, TypeUpcasters> } | { ok: false; path: readonly string[]; problem: string };

/**
 * Checks `upcasters: { type: { version: step } }`: each type one the projection reads (an exact
 * type, not a pattern), each key a positive integer, keys without a gap (every version between
 * the lowest and the current one needs its step), each step of `kind`.
 */
export function checkUpcasters(value: unknown, eventTypes: readonly string[], kind: UpcasterKind): Checked {
  const upcasters = new Map<string, TypeUpcasters>();
  if (value === undefined) return { ok: true, upcasters };
  if (!isPlainObject(value)) {
    return { ok: false, path: ['upcasters'], problem: `upcasters must be an object of event type → { version: upcaster }, got ${describeValue(value)}` };
  }
  for (const type of Object.keys(value).sort()) {
    const path = ['upcasters', type];
    if (type.includes('*')) {
      return { ok: false, path, problem: `upcasters are per event type; '${type}' is a pattern, name each type it stands for` };
    }
    if (!readsEventType(eventTypes, type)) {
      return { ok: false, path, problem: `upcasters for '${type}', which the projection does not read (${eventTypes.join(', ')})` };
    }
    const byVersion = value[type];
    if (!isPlainObject(byVersion) || Object.keys(byVersion).length === 0) {
      return { ok: false, path, problem: `upcasters for '${type}' must be an object of version → upcaster, got ${describeValue(byVersion)}` };
    }
    const versions: number[] = [];
    for (const key of Object.keys(byVersion)) {
      const version = Number(key);
      if (!VERSION_KEY.test(key) || version > MAX_SCHEMA_VERSION) {
        return { ok: false, path: [...path, key], problem: `upcasters for '${type}': version ${JSON.stringify(key)} must be a positive integer (the version it lifts from)` };
      }
      const problem = stepProblem(byVersion[key], kind);
      if (problem !== null) return { ok: false, path: [...path, key], problem: `upcaster for '${type}' from version ${key} ${problem}` };
      versions.push(version);
    }
    versions.sort((a, b) => a - b);
    const lowest = versions[0]!;
    const gap = versions.find((version, index) => version !== lowest + index);
    if (gap !== undefined) {
      const missing = lowest + versions.indexOf(gap);
      return {
        ok: false,
        path: [...path, String(gap)],
        problem: `upcasters for '${type}' have no step from version ${missing}: give one for each version from ${lowest} to ${versions.at(-1)}`,
      };
    }
    const steps = versions.map((version) => byVersion[String(version)] as Upcaster | string);
    upcasters.set(type, Object.freeze({ lowest, current: lowest + versions.length, steps: Object.freeze(steps) }));
  }
  return { ok: true, upcasters };
}

function stepProblem(step: unknown, kind: UpcasterKind): string | null {
  if (kind === 'function') {
    return typeof step === 'function' ? null : `must be a function (data, event) => the next version's data, got ${describeValue(step)}`;
  }
  return typeof step === 'string' && step.trim() !== '' ? null : `must be a SQL expression over data (a non-empty string), got ${describeValue(step)}`;
}

/** The definition's shape again, for a projection checked anew (see `loadProjections`). */
export function upcastersDefinition(upcasters: ReadonlyMap<string, TypeUpcasters>): Record<string, Record<string, Upcaster | string>> {
  return Object.fromEntries(
    [...upcasters].map(([type, { lowest, steps }]) => [type, Object.fromEntries(steps.map((step, i) => [String(lowest + i), step]))]),
  );
}

/** Where an event stands: already current, liftable by some steps, or with no path up. */
export type SchemaPath =
  | { kind: 'current' }
  | { kind: 'lift'; upcasters: TypeUpcasters; from: number }
  | { kind: 'none'; message: string };

/** The path of an event of `type` at `version` up to the projection's current version of it. */
export function schemaPath(projection: Pick<Projection, 'name' | 'upcasters'>, type: string, version: number): SchemaPath {
  const upcasters = projection.upcasters?.get(type);
  if (upcasters === undefined || version === upcasters.current) return { kind: 'current' };
  if (version >= upcasters.lowest && version < upcasters.current) return { kind: 'lift', upcasters, from: version };
  return { kind: 'none', message: noPathMessage(projection.name, type, version, upcasters) };
}

/**
 * `projection 'accounts': 'account.opened' event has schema version 4; it knows versions 1 to 3`.
 * The same words as `projd.schema_version_unknown` (migration 0009) says them for batch SQL.
 */
export function noPathMessage(projection: string, type: string, version: number, { lowest, current }: TypeUpcasters): string {
  return `projection '${projection}': '${type}' event has schema version ${version}; it knows versions ${lowest} to ${current}`;
}

/** A stored event has a schema version its projection cannot lift: deterministic, like a handler's throw. */
export class SchemaVersionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SchemaVersionError';
  }
}

/**
 * The event as handlers see it: `data` lifted by the module's upcasters and `schemaVersion`
 * set to the current version. A YAML projection's steps are SQL, applied by its statements
 * themselves; here its events are only checked.
 *
 * @throws SchemaVersionError when the event's version has no path up, or an upcaster returns nothing.
 */
export function upcastEvent(projection: Pick<Projection, 'name' | 'upcasters'>, event: ProjdEvent): ProjdEvent {
  const path = schemaPath(projection, event.type, event.schemaVersion);
  if (path.kind === 'current') return event;
  if (path.kind === 'none') throw new SchemaVersionError(path.message);
  const { upcasters } = path;
  let lifted = event;
  for (let version = path.from; version < upcasters.current; version++) {
    const step = upcasters.steps[version - upcasters.lowest]!;
    if (typeof step === 'string') return event;
    const data: unknown = step(lifted.data, lifted);
    if (data === undefined || typeof (data as { then?: unknown } | null)?.then === 'function') {
      const got = data === undefined ? 'undefined' : 'a promise';
      throw new SchemaVersionError(
        `projection '${projection.name}': upcaster for '${event.type}' from version ${version} returned ${got}; it returns the next version's data`,
      );
    }
    lifted = { ...lifted, data, schemaVersion: version + 1 };
  }
  return lifted;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}
