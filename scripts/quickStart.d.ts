/** `value` as one shell word: as it is when that is safe, else in single quotes. */
export declare function shellWord(value: string): string;

/**
 * The lines to paste into a terminal in the projd folder: `export DATABASE_URL=…` (left out
 * when `databaseUrl` is null), two appends, a look at the read model, status, a replay.
 */
export declare function quickStartCommands(databaseUrl: string | null): string[];
