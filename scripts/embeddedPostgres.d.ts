export declare const POSTGRES_USER: 'postgres';
export declare const POSTGRES_PASSWORD: 'postgres';

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

export declare function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres>;
export declare function freePort(): Promise<number>;
export declare function isPortFree(port: number): Promise<boolean>;
export declare function connectionUrl(port: number, database?: string): string;
