export declare const POSTGRES_USER: 'postgres';
export declare const POSTGRES_PASSWORD: 'postgres';
/** The `code` of every error that explains, in one line with its fix, why the server could not start. */
export declare const START_FAILED: 'EMBEDDED_POSTGRES_START_FAILED';
/** Name prefix, in the temp folder, of root's copies of the server binaries. */
export declare const BINARY_COPY_PREFIX: 'projd-postgres-';

export interface EmbeddedPostgresOptions {
  /** Absolute path; initdb runs only when it holds no cluster yet. */
  dataDir: string;
  /** Preferred port; a free one is used when it is missing or taken. */
  port?: number;
  /** `false`: test-only speed flags (fsync off, …), and `stop()` deletes `dataDir`. */
  persistent: boolean;
  /** Receives initdb and server output, line by line. @defaultValue ignore */
  log?: (line: string) => void;
  /** Run the server in its own process group, so a terminal's Ctrl-C leaves it up. @defaultValue false */
  detached?: boolean;
  /** Deadline for each phase (initdb, server start). @defaultValue 30000 */
  startTimeoutMs?: number;
  /** Wait for a fast shutdown before an immediate one. @defaultValue 10000 */
  stopTimeoutMs?: number;
}

export interface EmbeddedPostgres {
  /** `postgres://postgres:postgres@127.0.0.1:<port>/postgres` */
  url: string;
  port: number;
  dataDir: string;
  pid: number | undefined;
  detached: boolean;
  /** Idempotent and bounded in time: fast shutdown, then immediate, then SIGKILL. */
  stop(): Promise<void>;
}

/** Throws an error with `code` START_FAILED (and `log`, the server's last lines) when the server cannot start. */
export declare function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres>;
/**
 * `dataDir`, or, as root when OS user `postgres` cannot reach it (a private folder), a folder
 * in the temp folder named after it.
 */
export declare function reachableDataDir(dataDir: string): Promise<string>;
export declare function freePort(): Promise<number>;
export declare function isPortFree(port: number): Promise<boolean>;
export declare function connectionUrl(port: number, database?: string): string;
