import { ON_ERROR_POLICIES } from '../onErrorPolicies.js';
import { DURATION_EXPECTED, settingDurationMs } from './duration.js';

/**
 * One config key: how its value is checked, its default, and (in the comment on its entry in
 * {@link CONFIG_SETTINGS}) its documentation. `In` is what a config may say, `Out` the checked value.
 */
export interface Setting<In, Out> {
  /** What a valid value is, ending the sentence "<key> must be …". */
  expected: string;
  /** The checked value, or `undefined` when the value is invalid. */
  parse(value: unknown): Out | undefined;
  /** `''` counts as not set, so `${VAR:-}` can leave the key to its default. */
  emptyIsUnset?: boolean;
  /** A path, resolved against the config file's folder. */
  isPath?: boolean;
  /**
   * The value when nothing sets the key, written as a config file would say it and checked
   * like one; none where the loader works it out (`database.url`, `database.listenUrl`).
   */
  default?: In;
}

type AnySetting = Setting<unknown, unknown>;

/** A mapping of keys (`database`, `metrics`, …) or of further sections. */
interface Section {
  readonly [name: string]: AnySetting | Section;
}


const nonEmptyText = {
  expected: 'a non-empty string',
  parse: (value: unknown) => (typeof value === 'string' && value !== '' ? value : undefined),
};

function text(options: Pick<Setting<string, string>, 'default' | 'emptyIsUnset' | 'isPath'> = {}): Setting<string, string> {
  return { ...nonEmptyText, ...options };
}

/** A string the loader leaves unset when absent: the key has no default. */
function optionalText(): Setting<string, string | undefined> {
  return { ...nonEmptyText, emptyIsUnset: true };
}

function integer(min: number, max: number, defaultValue: number): Setting<number, number> {
  return {
    expected: `an integer from ${min} to ${max}`,
    parse: (value) => {
      // A string of digits is accepted so that `${VAR}` can supply a number.
      const number = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
      return typeof number === 'number' && Number.isInteger(number) && number >= min && number <= max
        ? number
        : undefined;
    },
    default: defaultValue,
  };
}

// The same check as for a duration flag, so both accept the same values.
function duration(defaultValue: string): Setting<string | number, number> {
  return { expected: DURATION_EXPECTED, parse: settingDurationMs, default: defaultValue };
}

function boolean(defaultValue: boolean): Setting<boolean, boolean> {
  return {
    expected: 'true or false',
    // 'true'/'false' too, so that `${VAR}` can supply it.
    parse: (value) =>
      value === true || value === 'true' ? true : value === false || value === 'false' ? false : undefined,
    default: defaultValue,
  };
}

function oneOf<const T extends string>(choices: readonly T[], defaultValue: NoInfer<T>): Setting<T, T> {
  return {
    expected: `one of ${choices.join(', ')}`,
    parse: (value) => choices.find((choice) => choice === value),
    default: defaultValue,
  };
}

/** How a projection is rebuilt after a version change. */
export const REBUILD_MODES = ['blue-green', 'in-place'] as const;

/** pino's levels, plus `silent`. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/**
 * Every accepted key, with its check, its default and its documentation: the one source of
 * `Config`, `ResolvedConfig`, the defaults and the key list. Durations resolve to
 * milliseconds, paths to absolute paths. Every key is documented, with its default, in
 * `config.example.yaml` and `docs/configuration.md`.
 */
export const CONFIG_SETTINGS = {
  database: {
    /** Connection URL. `DATABASE_URL` overrides it. Required from one or the other. */
    url: text({ emptyIsUnset: true }),
    /** Direct (non-pooled) connection for LISTEN, needed behind PgBouncer in transaction mode; empty means unset. @defaultValue the resolved `database.url` */
    listenUrl: text({ emptyIsUnset: true }),
    /** Connections in the pool shared by all projections, 1 to 1000. @defaultValue 10 */
    poolSize: integer(1, 1000, 10),
    /**
     * Run handlers' parameterised statements, SQL batch handlers' statements, projd's own
     * reads and checkpoint moves of every batch, and `GET /wait`'s read, as prepared
     * statements, which skips parsing and planning them for every event, batch and wait. Turn
     * off behind a pooler that cannot keep prepared statements (PgBouncer in transaction mode
     * before 1.21). @defaultValue true
     */
    preparedStatements: boolean(true),
    /**
     * How long opening a connection may take, for every connection projd opens, and how long
     * the listener's probe may go unanswered before its connection is replaced. @defaultValue `10s`
     */
    connectTimeout: duration('10s'),
    /** How often the listening connection is probed with a trivial query. @defaultValue `30s` */
    listenProbeInterval: duration('30s'),
  },
  projections: {
    /** Folder of projection modules, relative to the config file (absolute once resolved). @defaultValue `./projections` */
    dir: text({ isPath: true, default: './projections' }),
    /** Most events applied in one transaction, 1 to 100000. @defaultValue 1000 */
    batchSize: integer(1, 100_000, 1000),
    /**
     * Most events in one batch of a SQL batch handler (`batch:`), 1 to 100000, unless the
     * projection sets its own `batchSize`. Larger than `batchSize`: such a batch pulls no events
     * and costs a few round trips whatever it holds, and holds back no other projection while it
     * runs (see `BATCH_MARK`). @defaultValue 100000
     */
    sqlBatchSize: integer(1, 100_000, 100_000),
    /** Fallback wake-up when no notification arrives: a duration such as `5s` or a number of ms. @defaultValue `5s` */
    pollInterval: duration('5s'),
    /** A batch running longer is cancelled, rolled back and retried as a transient failure. @defaultValue `30s` */
    batchTimeout: duration('30s'),
    /** What a projection does with an event it cannot apply, unless its module says otherwise: `park` it and go on, or `stop` there. @defaultValue `park` */
    onError: oneOf(ON_ERROR_POLICIES, 'park'),
    /** Attempts at a failing event before it is parked or the projection stops, 1 to 100. @defaultValue 3 */
    maxAttempts: integer(1, 100, 3),
    /**
     * Tries at an event alone in its batch whose failure is transient (a batch timeout, a
     * serialization failure, a deadlock, a lock not granted) but keeps recurring, before it is
     * parked or the projection stops, as `onError` says; 1 to 100. Lost connections and server
     * restarts never count. @defaultValue 5
     */
    maxTransientAttempts: integer(1, 100, 5),
    /**
     * Whether a batch's commit waits until its WAL is on disk (PostgreSQL's
     * `synchronous_commit`, for projd's batches only). Off by default: a batch then holds its
     * locks, and the snapshot gate of every other projection, for a disk flush less, and a
     * server crash loses at most the last fraction of a second of batches, each whole with its
     * checkpoint, which projd applies again. Effects stay exactly-once; turn it on only if the
     * read model must never step back after a crash. @defaultValue false
     */
    synchronousCommit: boolean(false),
    /**
     * How a projection is rebuilt when its `version` (or `partitions`) changes: `blue-green`
     * builds the new version in a schema of its own while the old one serves, then swaps the
     * tables in one transaction; `in-place` empties the tables and rebuilds them where they
     * are, as `projd replay` does. A projection whose SQL names a schema, or reads tables other
     * than its own, always rebuilds in place. See docs/rebuilds.md. @defaultValue `blue-green`
     */
    rebuild: oneOf(REBUILD_MODES, 'blue-green'),
    /**
     * Keep the tables a blue/green swap replaced, in a schema `projd_old_<projection>_v<N>_…`,
     * rather than drop them. @defaultValue false
     */
    keepOldTables: boolean(false),
  },
  metrics: {
    /** Address the HTTP server listens on. @defaultValue `127.0.0.1` */
    host: text({ default: '127.0.0.1' }),
    /** Port of the HTTP server, 0 to 65535; 0 disables it. @defaultValue 9464 */
    port: integer(0, 65_535, 9464),
  },
  log: {
    /** Lowest level written: one of pino's levels, or `silent`. @defaultValue `info` */
    level: oneOf(LOG_LEVELS, 'info'),
  },
  health: {
    /** `projd status --check` fails when a projection's oldest unapplied event is older than this. @defaultValue `5m` */
    maxLag: duration('5m'),
    /** `/healthz` answers 503 when a projection's loop has made no pass for this long. @defaultValue `2m` */
    stuckAfter: duration('2m'),
    /**
     * A projection counts as `stalled` (in `projd status`, `--check`, `/metrics` and the daemon's
     * log) once its oldest event held back by an open transaction has waited this long; before,
     * an ordinary commit in flight, it is `catching_up`. @defaultValue `5s`
     */
    stallAfter: duration('5s'),
  },
  /**
   * An events table of the application's own, adopted by `projd migrate --adopt` instead of
   * projd's `projd.events`. Unset: projd's own table. See docs/adopting.md.
   */
  events: {
    /** The table, `schema.name` or a name on the search path. @defaultValue unset: projd's own `projd.events` */
    table: optionalText(),
    /**
     * The table's column for each of projd's event fields. Unset, a field takes the column of
     * projd's own name for it (`position`, `stream_id`, `stream_version`, `type`, `data`,
     * `metadata`, `schema_version`, `created_at`, `transaction_id`) if the table has one.
     * `position`, `type` and `data` are required; the others have stand-ins (see docs/adopting.md).
     */
    columns: {
      /** The event's global position: a unique, increasing `bigint` or `integer`. */
      position: optionalText(),
      /** The stream id; any type, read as text. */
      streamId: optionalText(),
      /** The event's version in its stream: an integer type. */
      streamVersion: optionalText(),
      /** The event type: text. */
      type: optionalText(),
      /** The payload: `jsonb` or `json`. */
      data: optionalText(),
      /** `jsonb` or `json`. */
      metadata: optionalText(),
      /** An integer, or text holding one. */
      schemaVersion: optionalText(),
      /** `timestamptz` or `timestamp`. */
      createdAt: optionalText(),
      /** An `xid8` column the writer fills with `pg_current_xact_id()`; unset, `--adopt` adds one. */
      transactionId: optionalText(),
    },
    /** A SQL condition on the table's columns: only the rows it holds for are events to projd. @defaultValue every row */
    where: optionalText(),
  },
  /** How long shutdown waits for the batch in flight before giving up. @defaultValue `10s` */
  shutdownTimeout: duration('10s'),
} satisfies Section;

type Settings = typeof CONFIG_SETTINGS;

/** The config as written: every key optional, as a config file may say it. */
export type ConfigShape<S> = {
  -readonly [K in keyof S]?: S[K] extends Setting<infer In, unknown> ? In : ConfigShape<S[K]>;
};

/** The config as checked: every key present, with its checked value. */
export type ResolvedShape<S> = {
  -readonly [K in keyof S]: S[K] extends Setting<unknown, infer Out> ? Out : ResolvedShape<S[K]>;
};

/** The dotted path of every key in `S`, e.g. `metrics.port`. */
type KeyPaths<S, Prefix extends string = ''> = {
  [K in keyof S & string]: S[K] extends AnySetting ? `${Prefix}${K}` : KeyPaths<S[K], `${Prefix}${K}.`>;
}[keyof S & string];

/** The dotted path of an accepted config key, e.g. `metrics.port`. */
export type ConfigKey = KeyPaths<Settings>;

function isSetting(entry: AnySetting | Section): entry is AnySetting {
  return typeof entry.parse === 'function';
}

function flatten(section: Section, prefix: string): [string, AnySetting][] {
  return Object.entries(section).flatMap(([name, entry]) =>
    isSetting(entry) ? [[prefix + name, entry]] : flatten(entry, `${prefix}${name}.`),
  );
}

/** Every key's setting, by its dotted path, in the order of {@link CONFIG_SETTINGS}. */
export const SETTINGS_BY_KEY: ReadonlyMap<ConfigKey, AnySetting> = new Map(
  flatten(CONFIG_SETTINGS, '') as [ConfigKey, AnySetting][],
);

/** Every accepted config key; each one is documented in `config.example.yaml`. */
export const CONFIG_KEYS = [...SETTINGS_BY_KEY.keys()] as readonly ConfigKey[];
