import { UserError } from '../errors.js';

/**
 * How an adopted table's columns become projd's event fields: the pure half of
 * `projd migrate --adopt`, from the table's columns and the config's mapping to the view's SQL.
 */

/** projd's event fields, as the config names them (`events.columns.<field>`). */
export const EVENT_FIELDS = [
  'position',
  'streamId',
  'streamVersion',
  'type',
  'data',
  'metadata',
  'schemaVersion',
  'createdAt',
  'transactionId',
] as const;

export type EventField = (typeof EVENT_FIELDS)[number];

/** The field's column in projd's own table, which a mapping falls back to when the table has it. */
const PROJD_COLUMN: Record<EventField, string> = {
  position: 'position',
  streamId: 'stream_id',
  streamVersion: 'stream_version',
  type: 'type',
  data: 'data',
  metadata: 'metadata',
  schemaVersion: 'schema_version',
  createdAt: 'created_at',
  transactionId: 'transaction_id',
};

/** Fields without which there is nothing to project. */
const REQUIRED: ReadonlySet<EventField> = new Set(['position', 'type', 'data']);

/** The columns `--adopt` adds when the table has none of its own for them. */
export const ADDED_ERA_COLUMN = 'projd_era';
export const ADDED_TRANSACTION_COLUMN = 'projd_transaction_id';

/** The config's `events` section. */
export interface EventsTableConfig {
  table?: string | undefined;
  columns: Partial<Record<EventField, string | undefined>>;
  where?: string | undefined;
}

/** A column of the adopted table and its type as `regtype` prints it (`bigint`, `jsonb`, …). */
export interface TableColumn {
  name: string;
  type: string;
}

/** Each field's column in the table; absent: the table has none and the view puts a stand-in. */
export type ColumnMapping = Partial<Record<EventField, string>>;

const INTEGER_TYPES = ['smallint', 'integer', 'bigint'];
const TEXT_TYPES = ['text', 'character varying', 'character'];
const JSON_TYPES = ['jsonb', 'json'];

/** The types each field accepts, ending "… must be a column of type …". */
const ACCEPTED_TYPES: Record<EventField, readonly string[] | 'any'> = {
  // No cast: the view's position must be the plain column for the delivery-order index.
  position: ['bigint', 'integer'],
  streamId: 'any',
  streamVersion: INTEGER_TYPES,
  type: TEXT_TYPES,
  data: JSON_TYPES,
  metadata: JSON_TYPES,
  schemaVersion: [...INTEGER_TYPES, ...TEXT_TYPES],
  createdAt: ['timestamp with time zone', 'timestamp without time zone'],
  // No cast either: it leads the delivery order after the era.
  transactionId: ['xid8'],
};

/**
 * Each field's column: the one the config names, else the column of projd's own name for it
 * when the table has one. Throws a `UserError` naming the key for a column the table lacks, a
 * column of the wrong type, or a required field left without one.
 */
export function resolveColumnMapping(config: EventsTableConfig, table: string, columns: readonly TableColumn[]): ColumnMapping {
  const byName = new Map(columns.map((column) => [column.name, column]));
  const mapping: ColumnMapping = {};
  for (const field of EVENT_FIELDS) {
    const key = `events.columns.${field}`;
    const named = config.columns[field];
    const column = byName.get(named ?? PROJD_COLUMN[field]);
    if (named !== undefined && !column) {
      throw new UserError(`${key}: table ${table} has no column '${named}'`);
    }
    if (!column) {
      if (REQUIRED.has(field)) {
        throw new UserError(
          `${key} is required: table ${table} has no column '${PROJD_COLUMN[field]}'; name the column that holds the event's ${field}`,
        );
      }
      continue;
    }
    const accepted = ACCEPTED_TYPES[field];
    if (accepted !== 'any' && !accepted.includes(column.type)) {
      throw new UserError(`${key}: column '${column.name}' of ${table} is ${column.type}; it must be ${accepted.join(' or ')}`);
    }
    mapping[field] = column.name;
  }
  return mapping;
}

/** `"name"`, as PostgreSQL's quote_ident would. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** The view's expression for each of projd's columns: the plain column where it can be, else a cast or a stand-in. */
function viewColumns(mapping: ColumnMapping, types: ReadonlyMap<string, string>): [string, string][] {
  const column = (field: EventField): { sql: string; type: string } | undefined => {
    const name = mapping[field];
    return name === undefined ? undefined : { sql: `t.${quoteIdent(name)}`, type: types.get(name)! };
  };
  const cast = (field: EventField, type: string, standIn: string): string => {
    const c = column(field);
    if (!c) return standIn;
    return c.type === type ? c.sql : `${c.sql}::${type}`;
  };
  const schemaVersion = column('schemaVersion');
  return [
    ['position', column('position')!.sql],
    ['era', `t.${quoteIdent(ADDED_ERA_COLUMN)}`],
    ['transaction_id', column('transactionId')?.sql ?? `t.${quoteIdent(ADDED_TRANSACTION_COLUMN)}`],
    ['stream_id', cast('streamId', 'text', `''::text`)],
    ['stream_version', cast('streamVersion', 'integer', '0')],
    ['type', cast('type', 'text', '')],
    ['data', cast('data', 'jsonb', '')],
    ['metadata', cast('metadata', 'jsonb', `'{}'::jsonb`)],
    [
      'schema_version',
      // Text such as Emmett's: a version that is not a plain number reads as 1 rather than failing every read.
      schemaVersion && TEXT_TYPES.includes(schemaVersion.type)
        ? `case when ${schemaVersion.sql} ~ '^[0-9]{1,9}$' then ${schemaVersion.sql}::integer else 1 end`
        : cast('schemaVersion', 'integer', '1'),
    ],
    ['created_at', cast('createdAt', 'timestamptz', 'now()')],
  ];
}

export interface AdoptedViewOptions {
  /** The table as `regclass` prints it, quoted where it needs to be. */
  source: string;
  mapping: ColumnMapping;
  columns: readonly TableColumn[];
  where?: string | undefined;
}

/**
 * The `projd.events` view over an adopted table: projd's columns in its own table's order,
 * from plain columns wherever the delivery order or a lookup uses them, so that the row
 * comparison on `(era, transaction_id, position)` reaches the table's index.
 */
export function adoptedViewSql({ source, mapping, columns, where }: AdoptedViewOptions): string {
  const types = new Map(columns.map((column) => [column.name, column.type]));
  const select = viewColumns(mapping, types)
    .map(([name, sql]) => `${sql} as ${name}`)
    .join(',\n         ');
  const filter = where === undefined ? '' : `\n   where (${where})`;
  return /* sql */ `create view projd.events as
  select ${select}
    from ${source} t${filter}`;
}
