import type { ConfigShape, CONFIG_SETTINGS, ResolvedShape } from './settings.js';

/**
 * Config as written (`Config`, every key optional) and as checked (`ResolvedConfig`,
 * defaults applied, durations in milliseconds, paths absolute). Both are derived from
 * `CONFIG_SETTINGS`, where each key is documented with its default.
 */
export type Config = ConfigShape<typeof CONFIG_SETTINGS>;

export type ResolvedConfig = ResolvedShape<typeof CONFIG_SETTINGS>;
