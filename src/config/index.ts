export { loadConfig, CONFIG_KEYS, DEFAULT_CONFIG_FILE, LOG_LEVELS } from './loadConfig.js';
export type { ConfigKey, LoadConfigOptions } from './loadConfig.js';
export { parseDuration } from './duration.js';
export { interpolate } from './interpolate.js';
export type { Env } from './interpolate.js';
export type { Config, ResolvedConfig } from './types.js';
