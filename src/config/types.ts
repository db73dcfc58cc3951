/**
 * Config as written (`Config`, every key optional) and as checked (`ResolvedConfig`,
 * defaults applied, durations in milliseconds, paths absolute).
 * Every key is documented, with its default, in `config.example.yaml`.
 */
export interface Config {
  database?: {
    /** Connection URL. `DATABASE_URL` overrides it. Required from one or the other. */
    url?: string;
    /** Direct (non-pooled) connection for LISTEN, needed behind PgBouncer in transaction mode; empty means unset. @defaultValue the resolved `database.url` */
    listenUrl?: string;
    /** Connections in the pool shared by all projections, 1 to 1000. @defaultValue 10 */
    poolSize?: number;
    /**
     * Run handlers' parameterised statements as prepared statements, which skips parsing and
     * planning them for every event. Turn off behind a pooler that cannot keep prepared
     * statements (PgBouncer in transaction mode before 1.21). @defaultValue true
     */
    preparedStatements?: boolean;
    /**
     * How long opening a connection may take, for every connection projd opens, and how long
     * the listener's probe may go unanswered before its connection is replaced. @defaultValue `10s`
     */
    connectTimeout?: string | number;
    /** How often the listening connection is probed with a trivial query. @defaultValue `30s` */
    listenProbeInterval?: string | number;
  };
  projections?: {
    /** Folder of projection modules, relative to the config file. @defaultValue `./projections` */
    dir?: string;
    /** Most events applied in one transaction, 1 to 100000. @defaultValue 1000 */
    batchSize?: number;
    /** Fallback wake-up when no notification arrives: a duration such as `5s` or a number of ms. @defaultValue `5s` */
    pollInterval?: string | number;
    /** A batch running longer is cancelled, rolled back and retried as a transient failure. @defaultValue `30s` */
    batchTimeout?: string | number;
    /** What a projection does with an event it cannot apply, unless its module says otherwise: `park` it and go on, or `stop` there. @defaultValue `park` */
    onError?: 'park' | 'stop';
    /** Attempts at a failing event before it is parked or the projection stops, 1 to 100. @defaultValue 3 */
    maxAttempts?: number;
    /**
     * Tries at an event alone in its batch whose failure is transient (a batch timeout, a
     * serialization failure, a deadlock, a lock not granted) but keeps recurring, before it is
     * parked or the projection stops, as `onError` says; 1 to 100. Lost connections and server
     * restarts never count. @defaultValue 5
     */
    maxTransientAttempts?: number;
  };
  metrics?: {
    /** Address the HTTP server listens on. @defaultValue `127.0.0.1` */
    host?: string;
    /** Port of the HTTP server, 0 to 65535; 0 disables it. @defaultValue 9464 */
    port?: number;
  };
  log?: {
    /** Lowest level written: one of pino's levels, or `silent`. @defaultValue `info` */
    level?: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  };
  health?: {
    /** `projd status --check` fails when a projection's oldest unapplied event is older than this. @defaultValue `5m` */
    maxLag?: string | number;
    /** `/healthz` answers 503 when a projection's loop has made no pass for this long. @defaultValue `2m` */
    stuckAfter?: string | number;
    /**
     * A projection counts as `stalled` (in `projd status`, `--check`, `/metrics` and the daemon's
     * log) once its oldest event held back by an open transaction has waited this long; before,
     * an ordinary commit in flight, it is `catching_up`. @defaultValue `5s`
     */
    stallAfter?: string | number;
  };
  /** How long shutdown waits for the batch in flight before giving up. @defaultValue `10s` */
  shutdownTimeout?: string | number;
}

export interface ResolvedConfig {
  database: {
    url: string;
    listenUrl: string;
    poolSize: number;
    preparedStatements: boolean;
    /** Milliseconds. */
    connectTimeout: number;
    /** Milliseconds. */
    listenProbeInterval: number;
  };
  projections: {
    /** Absolute path. */
    dir: string;
    batchSize: number;
    /** Milliseconds. */
    pollInterval: number;
    /** Milliseconds. */
    batchTimeout: number;
    onError: 'park' | 'stop';
    maxAttempts: number;
    maxTransientAttempts: number;
  };
  metrics: {
    host: string;
    port: number;
  };
  log: {
    level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  };
  health: {
    /** Milliseconds. */
    maxLag: number;
    /** Milliseconds. */
    stuckAfter: number;
    /** Milliseconds. */
    stallAfter: number;
  };
  /** Milliseconds. */
  shutdownTimeout: number;
}
