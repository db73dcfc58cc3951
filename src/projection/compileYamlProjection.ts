import { isAlias, isMap, isNode, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { UserError } from '../errors.js';
import { describeValue, firstLine } from '../text.js';
import { checkProjectionDefinition } from './defineProjection.js';
import type { EventHandler, ProjdEvent, Projection } from './types.js';
import { compileNamedParameters, replaceBatchEventsCalls, splitSqlStatements, type NamedParameters } from './sqlLexer.js';
import { liftedBatchEventsSql, liftedDataSql } from './upcastSql.js';
import { schemaPath, SchemaVersionError, type TypeUpcasters } from './upcasters.js';

/**
 * The placeholders a YAML handler may use, the type each is cast to, and how its value is
 * taken from the event. The casts let PostgreSQL resolve operators such as `:data->>'amount'`,
 * which are ambiguous on an untyped parameter (json or jsonb?). `transactionId` stays untyped:
 * it is an `xid8`, which converts to nothing, so it takes the type of the column it goes to.
 */
const EVENT_PARAMETERS = {
  position: { type: 'bigint', value: (event) => String(event.position) },
  transactionId: { type: undefined, value: (event) => String(event.transactionId) },
  streamId: { type: 'text', value: (event) => event.streamId },
  streamVersion: { type: 'integer', value: (event) => event.streamVersion },
  type: { type: 'text', value: (event) => event.type },
  data: { type: 'jsonb', value: (event) => JSON.stringify(event.data) },
  metadata: { type: 'jsonb', value: (event) => JSON.stringify(event.metadata) },
  schemaVersion: { type: 'integer', value: (event) => event.schemaVersion },
  createdAt: { type: 'timestamptz', value: (event) => event.createdAt },
} satisfies Record<string, { type: string | undefined; value: (event: ProjdEvent) => unknown }>;

type EventParameterName = keyof typeof EVENT_PARAMETERS;

const PARAMETER_TYPES: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(EVENT_PARAMETERS).flatMap(([name, { type }]) => (type === undefined ? [] : [[name, type]])),
);

/**
 * Compiles a declarative projection:
 *
 * ```yaml
 * name: deposits
 * version: 1
 * setup: create table if not exists deposits (account_id text primary key, total bigint not null)
 * reset: truncate deposits
 * handlers:
 *   account.credited: |
 *     insert into deposits (account_id, total) values (:streamId, (:data->>'amount')::bigint)
 *     on conflict (account_id) do update set total = deposits.total + excluded.total
 * ```
 *
 * A handler is SQL (one string, possibly several statements separated by `;`, or a list of
 * strings) run in order in the batch's transaction, with the event's fields bound to the
 * placeholders of `EVENT_PARAMETERS`. Placeholders are compiled once, here.
 *
 * @param file Named in every message, as `<file>:<line>:<col>: …`, and kept as `source`.
 * @throws UserError for invalid YAML, an invalid definition or an unknown placeholder.
 */
export function compileYamlProjection(text: string, file: string): Projection {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number): string => {
    const { line, col } = lineCounter.linePos(offset);
    return `${file}:${line}:${col}`;
  };

  const [parseError] = doc.errors;
  if (parseError !== undefined) {
    const message =
      parseError.code === 'MULTIPLE_DOCS' ? 'a projection file holds one YAML document' : firstLine(parseError.message);
    throw new UserError(`${at(parseError.pos[0])}: ${message}`, { cause: parseError });
  }

  const root = doc.contents;
  if (!isMap(root)) {
    throw new UserError(
      `${at(root?.range?.[0] ?? 0)}: expected a mapping with keys name, version, handlers (and setup, reset), got ${
        root === null ? 'an empty file' : describeValue(root.toJS(doc))
      }`,
    );
  }

  const definition: Record<string, unknown> = {};
  // The checked upcasters, known once the whole definition is: handlers read them per event.
  const schemaVersions: SchemaVersions = {};
  let handlerPairs: Array<{ eventType: string; key: Node; value: unknown }> | undefined;
  for (const pair of root.items) {
    const key = stringKey(pair.key, at);
    const handlersMap = key === 'handlers' ? unalias(doc, pair.value) : undefined;
    if (isMap(handlersMap)) {
      handlerPairs = handlersMap.items.map((handler) => ({
        eventType: stringKey(handler.key, at, 'an event type'),
        key: handler.key as Node,
        value: unalias(doc, handler.value),
      }));
    } else {
      definition[key] = isNode(pair.value) ? pair.value.toJS(doc) : pair.value;
    }
  }

  if (handlerPairs !== undefined) {
    const name = definition.name;
    const label = typeof name === 'string' && name !== '' ? `projection '${name}'` : 'projection';
    const handlers: Record<string, EventHandler> = {};
    for (const { eventType, key, value } of handlerPairs) {
      const fail = (offset: number, problem: string): never => {
        throw new UserError(`${at(offset)}: ${label}: handler for '${eventType}' ${problem}`);
      };
      handlers[eventType] = compileHandler(doc, text, key, value, fail, schemaVersions);
    }
    definition.handlers = handlers;
  }

  checkYamlOnlyKeys(root, definition, at);

  const check = checkProjectionDefinition(definition, { upcasters: 'sql' });
  if (!check.ok) throw new UserError(`${at(locate(root, check.path))}: ${check.message}`);
  const { projection } = check;
  schemaVersions.projection = projection;
  const batch = liftBatchEvents(projection, definition.batch, (path, problem) => {
    throw new UserError(`${at(locate(root, path))}: projection '${projection.name}': ${problem}`);
  });
  return Object.freeze({ ...projection, ...(batch === undefined ? {} : { batch }), source: file });
}

/** Where a YAML handler finds its projection's upcasters, set once the definition is checked. */
interface SchemaVersions {
  projection?: Pick<Projection, 'name' | 'upcasters'>;
}

/**
 * The batch SQL reading lifted events: each `projd.batch_events()` becomes a subquery whose
 * `data` went through the upcasters. Unchanged without upcasters.
 */
function liftBatchEvents(
  projection: Projection,
  written: unknown,
  fail: (path: readonly string[], problem: string) => never,
): readonly string[] | undefined {
  const { batch, upcasters } = projection;
  if (batch === undefined || upcasters === undefined || upcasters.size === 0) return batch;
  const lifted = liftedBatchEventsSql(projection.name, upcasters);
  return Object.freeze(
    batch.map((sql, index) => {
      try {
        return replaceBatchEventsCalls(sql, (aliased) => (aliased ? lifted : `${lifted} as batch_events`));
      } catch (error) {
        const path = typeof written === 'string' ? ['batch'] : ['batch', String(index)];
        return fail(path, `with upcasters, batch SQL ${(error as Error).message}`);
      }
    }),
  );
}

/**
 * What only a YAML file can get wrong: `handleBatch` is a module's function, and `batch` SQL
 * reads its events from `projd.batch_events()`, so it has no placeholders to bind.
 */
function checkYamlOnlyKeys(root: Node, definition: Record<string, unknown>, at: (offset: number) => string): void {
  const name = definition.name;
  const label = typeof name === 'string' && name !== '' ? `projection '${name}'` : 'projection';
  if (definition.handleBatch !== undefined) {
    throw new UserError(
      `${at(locate(root, ['handleBatch']))}: ${label}: handleBatch is a function, for modules; in YAML write batch (SQL over projd.batch_events())`,
    );
  }
  const batch = definition.batch;
  const statements = typeof batch === 'string' ? [batch] : Array.isArray(batch) ? batch : [];
  for (const [index, sql] of statements.entries()) {
    if (typeof sql !== 'string') continue; // checkProjectionDefinition names it
    let names: string[];
    try {
      names = compileNamedParameters(sql).names;
    } catch (error) {
      names = [(error as Error).message];
    }
    if (names.length > 0) {
      const path = typeof batch === 'string' ? ['batch'] : ['batch', String(index)];
      throw new UserError(
        `${at(locate(root, path))}: ${label}: batch SQL has no placeholders (found ${
          names[0]!.startsWith('positional') ? names[0] : `:${names[0]}`
        }); it reads the batch's events from projd.batch_events()`,
      );
    }
  }
}

/** A handler's SQL, split into statements and compiled once; the handler only binds values. */
function compileHandler(
  doc: Document,
  source: string,
  key: Node,
  value: unknown,
  fail: (offset: number, problem: string) => never,
  schemaVersions: SchemaVersions,
): EventHandler {
  const keyOffset = key.range?.[0] ?? 0;
  const entries: Array<{ sql: string; node: Node }> = [];
  if (isScalar(value) && typeof value.value === 'string') {
    entries.push({ sql: value.value, node: value });
  } else if (isSeq(value)) {
    for (const listed of value.items) {
      const item = unalias(doc, listed);
      if (!isScalar(item) || typeof item.value !== 'string') {
        const offset = isNode(item) ? (item.range?.[0] ?? keyOffset) : keyOffset;
        fail(offset, `has a list entry that is not a SQL string: ${describeNode(doc, item)}`);
      }
      entries.push({ sql: item.value as string, node: item });
    }
  } else {
    fail(keyOffset, `must be a SQL string or a list of SQL strings, got ${describeNode(doc, value)}`);
  }

  const statements: Array<{ sql: string; text: string; values: Array<(event: ProjdEvent) => unknown> }> = [];
  for (const { sql, node } of entries) {
    const nodeOffset = node.range?.[0] ?? keyOffset;
    for (const statement of splitSqlStatements(sql)) {
      let compiled: NamedParameters;
      try {
        compiled = compileNamedParameters(statement, PARAMETER_TYPES);
      } catch (error) {
        fail(nodeOffset, `uses a ${(error as Error).message}`);
      }
      const values = compiled.names.map((name) => {
        if (!isEventParameter(name)) {
          const suggestion = Object.keys(EVENT_PARAMETERS).find((known) => known.toLowerCase() === name.toLowerCase());
          const hint = suggestion === undefined ? '' : ` (did you mean :${suggestion}?)`;
          fail(
            placeholderOffset(source, node, name) ?? nodeOffset,
            `uses unknown placeholder :${name}${hint}; the placeholders are ${Object.keys(EVENT_PARAMETERS)
              .map((known) => `:${known}`)
              .join(', ')}`,
          );
        }
        return EVENT_PARAMETERS[name].value;
      });
      statements.push({ sql: statement, text: compiled.text, values });
    }
  }
  if (statements.length === 0) fail(keyOffset, 'has no SQL statement');

  // An event of an older schema version runs each statement with `:data` lifted in SQL by the
  // upcasters, a text of its own per type and version (few, so each is prepared once).
  const liftedTexts = statements.map(() => new Map<string, string>());
  const liftedText = (index: number, type: string, upcasters: TypeUpcasters, from: number): string => {
    const key = `${type}\u0000${from}`;
    let lifted = liftedTexts[index]!.get(key);
    if (lifted === undefined) {
      const render = { data: (parameter: string) => liftedDataSql(upcasters, from, parameter) };
      lifted = compileNamedParameters(statements[index]!.sql, PARAMETER_TYPES, render).text;
      liftedTexts[index]!.set(key, lifted);
    }
    return lifted;
  };

  // Queues its statements and returns: nothing waits for their results, so the batch sends
  // them in pipeline, and still attributes a failure to this event (see runner/handlerDb.ts).
  return (event, db) => {
    const path = schemaVersions.projection ? schemaPath(schemaVersions.projection, event.type, event.schemaVersion) : undefined;
    if (path?.kind === 'none') throw new SchemaVersionError(path.message);
    const lift = path?.kind === 'lift' ? path : undefined;
    const bound = lift === undefined ? event : { ...event, schemaVersion: lift.upcasters.current };
    for (const [index, statement] of statements.entries()) {
      void db.query(
        lift === undefined ? statement.text : liftedText(index, event.type, lift.upcasters, lift.from),
        statement.values.map((value) => value(bound)),
      );
    }
  };
}

/**
 * The node an alias (`*touch`) stands for, so that a handler given by an alias is read as the
 * SQL of its anchor (`&touch`), and points at that anchor's lines in messages.
 */
function unalias(doc: Document, value: unknown): unknown {
  return isAlias(value) ? value.resolve(doc) : value;
}

function isEventParameter(name: string): name is EventParameterName {
  return Object.hasOwn(EVENT_PARAMETERS, name);
}

/** Where `:name` first appears in the node's source text, to point at the exact line. */
function placeholderOffset(source: string, node: Node, name: string): number | undefined {
  if (node.range === undefined || node.range === null) return undefined;
  const [start, end] = node.range;
  const pattern = new RegExp(`(?<![\\w$:]):${name}(?![\\w$])`);
  const match = pattern.exec(source.slice(start, end));
  return match === null ? undefined : start + match.index;
}

function stringKey(key: unknown, at: (offset: number) => string, what = 'a key'): string {
  if (isScalar(key) && typeof key.value === 'string') return key.value;
  const offset = isNode(key) ? (key.range?.[0] ?? 0) : 0;
  const shown = isScalar(key) ? describeValue(key.value) : 'a complex key';
  throw new UserError(`${at(offset)}: ${what} must be a string, got ${shown}`);
}

/** The offset of the key (or list item) a definition problem points at. */
function locate(root: Node, path: readonly string[]): number {
  let offset = root.range?.[0] ?? 0;
  let node: unknown = root;
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === segment);
      if (pair === undefined) break;
      offset = (pair.key as Node).range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node)) {
      const item = node.items[Number(segment)];
      if (!isNode(item)) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset;
}

function describeNode(doc: Document, value: unknown): string {
  return describeValue(isNode(value) ? value.toJS(doc) : value);
}
