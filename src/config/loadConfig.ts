import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { UserError, errorMessage } from '../errors.js';
import { didYouMean, editDistance, firstLine } from '../text.js';
import { describeSetting } from './duration.js';
import { interpolate, type Env } from './interpolate.js';
import { CONFIG_KEYS, SETTINGS_BY_KEY, type ConfigKey } from './settings.js';
import type { ResolvedConfig } from './types.js';

export { CONFIG_KEYS, LOG_LEVELS, type ConfigKey } from './settings.js';

/** The config file read when none is named, in the working folder. */
export const DEFAULT_CONFIG_FILE = 'projd.yaml';

/** Mappings that hold keys (`database`, `metrics`, …). */
const SECTIONS: ReadonlySet<string> = new Set(
  CONFIG_KEYS.flatMap((key) => key.split('.').slice(0, -1).map((_, i, parts) => parts.slice(0, i + 1).join('.'))),
);

/** Checked values by key path (durations in ms, paths absolute), from one layer. */
type ConfigLayer = Partial<Record<ConfigKey, unknown>>;

function isConfigKey(key: string): key is ConfigKey {
  return SETTINGS_BY_KEY.has(key as ConfigKey);
}

export interface LoadConfigOptions {
  /** Config file to read; it must exist. @defaultValue `projd.yaml` in `cwd` if there is one, else built-in defaults only */
  file?: string;
  /** Environment for `${VAR}` references and `DATABASE_URL`. */
  env: NodeJS.ProcessEnv;
  /** Folder in which `file` and the default config file are found. @defaultValue `process.cwd()` */
  cwd?: string;
}

/**
 * Reads, checks and resolves the configuration: built-in defaults, then the config file,
 * then the environment. Throws a one-line `UserError` naming the file, key and value for
 * anything the user can fix.
 */
export async function loadConfig(options: LoadConfigOptions): Promise<ResolvedConfig> {
  const cwd = path.resolve(options.cwd ?? process.cwd());
  const file = await readConfigFile(options.file, cwd);
  const baseDir = file ? path.dirname(file.path) : cwd;
  const fileValues = file
    ? checkConfigTree(parseYaml(file.text, file.source), { source: file.source, baseDir, env: options.env })
    : {};
  return mergeLayers(
    { defaults: defaultValues(baseDir), file: fileValues, env: envValues(options.env) },
    file?.source ?? DEFAULT_CONFIG_FILE,
  );
}

/** Every key's default, checked as if a config file in `baseDir` said it. */
function defaultValues(baseDir: string): ConfigLayer {
  const context: CheckContext = { source: 'defaults', baseDir, env: {} };
  const values: ConfigLayer = {};
  for (const [key, setting] of SETTINGS_BY_KEY) {
    if (setting.default !== undefined) values[key] = checkValue(key, setting.default, context);
  }
  return values;
}

function envValues(env: Env): ConfigLayer {
  return env.DATABASE_URL ? { 'database.url': env.DATABASE_URL } : {};
}

/** The one place the layers meet: built-in defaults < config file < environment. */
function mergeLayers(layers: { defaults: ConfigLayer; file: ConfigLayer; env: ConfigLayer }, source: string): ResolvedConfig {
  const values = { ...layers.defaults, ...layers.file, ...layers.env };
  const url = values['database.url'];
  if (url === undefined) {
    throw new UserError(`no database configured: set DATABASE_URL or database.url in ${source}`);
  }
  values['database.listenUrl'] ??= url;
  return nest(values) as ResolvedConfig;
}

/** `{ 'metrics.port': 9464, … }` as `{ metrics: { port: 9464 }, … }`, keys in the settings' order. */
function nest(values: ConfigLayer): Record<string, unknown> {
  const tree: Record<string, unknown> = {};
  for (const key of CONFIG_KEYS) {
    const names = key.split('.');
    const leaf = names.pop()!;
    let section = tree;
    for (const name of names) section = (section[name] ??= {}) as Record<string, unknown>;
    section[leaf] = values[key];
  }
  return tree;
}

async function readConfigFile(
  file: string | undefined,
  cwd: string,
): Promise<{ path: string; source: string; text: string } | undefined> {
  const source = file ?? DEFAULT_CONFIG_FILE;
  const absolute = path.resolve(cwd, source);
  try {
    return { path: absolute, source, text: await readFile(absolute, 'utf8') };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      if (file === undefined) return undefined;
      throw new UserError(`config file ${file} not found`, { cause: error });
    }
    if (code === 'EISDIR') throw new UserError(`config file ${source} is a folder`, { cause: error });
    throw new UserError(`config file ${source} cannot be read: ${errorMessage(error)}`, { cause: error });
  }
}

/** The YAML as plain values, mappings as `Map`s; `null` for an empty file. */
function parseYaml(text: string, source: string): unknown {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { prettyErrors: false, lineCounter });
  const [error] = document.errors;
  if (error) {
    const { line, col } = lineCounter.linePos(error.pos[0]);
    const reason =
      error.code === 'MULTIPLE_DOCS'
        ? 'a config file holds one document, found a second one'
        : firstLine(error.message);
    throw new UserError(`${source}:${line}:${col}: invalid YAML: ${reason}`, { cause: error });
  }
  try {
    // Maps keep keys as written: no `__proto__` games, no warnings for collection keys.
    return document.toJS({ mapAsMap: true });
  } catch (error) {
    throw new UserError(`${source}: invalid YAML: ${firstLine(errorMessage(error))}`, { cause: error });
  }
}

interface CheckContext {
  /** The config file as the user named it, starting every message. */
  source: string;
  /** Folder that relative paths start from. */
  baseDir: string;
  env: Env;
}

/**
 * The checked values of a parsed config file. A key with no value (`port:`) is left to
 * its default; string values have their `${VAR}` references replaced before the check.
 */
function checkConfigTree(tree: unknown, context: CheckContext): ConfigLayer {
  if (tree === null || tree === undefined) return {};
  if (!(tree instanceof Map)) {
    throw new UserError(`${context.source}: the top level must be a mapping of keys, got ${describeSetting(tree)}`);
  }
  const values: Partial<Record<ConfigKey, unknown>> = {};
  const visit = (mapping: Map<unknown, unknown>, prefix: string): void => {
    for (const [rawKey, value] of mapping) {
      const name = typeof rawKey === 'object' && rawKey !== null ? JSON.stringify(rawKey) : String(rawKey);
      const key = prefix + name;
      if (name.includes('.')) {
        throw new UserError(`${context.source}: unknown key '${key}' (write nested keys, not a dotted name)`);
      }
      if (isConfigKey(key)) {
        const checked = checkValue(key, value, context);
        if (checked !== undefined) values[key] = checked;
      } else if (SECTIONS.has(key)) {
        if (value === null) continue;
        if (!(value instanceof Map)) {
          throw new UserError(`${context.source}: ${key} must be a mapping, got ${describeSetting(value)}`);
        }
        visit(value, `${key}.`);
      } else {
        throw new UserError(`${context.source}: unknown key '${key}'${didYouMean(suggestKey(key))}`);
      }
    }
  };
  visit(tree, '');
  return values as ConfigLayer;
}

function checkValue(key: ConfigKey, raw: unknown, context: CheckContext): unknown {
  if (raw === null) return undefined;
  const check = SETTINGS_BY_KEY.get(key)!;
  const value = typeof raw === 'string' ? interpolate(raw, context.env, `${context.source}: ${key}`) : raw;
  if (check.emptyIsUnset && value === '') return undefined;
  const parsed = check.parse(value);
  if (parsed === undefined) {
    const origin = value === raw ? '' : ` (from ${describeSetting(raw)})`;
    throw new UserError(`${context.source}: ${key} must be ${check.expected}, got ${describeSetting(value)}${origin}`);
  }
  return check.isPath ? path.resolve(context.baseDir, parsed as string) : parsed;
}

/**
 * The accepted key or section a mistyped `key` most likely meant: one within an edit or
 * two, ignoring case, `-` and `_`; else the same name under another section.
 */
function suggestKey(key: string): string | undefined {
  const normalize = (text: string): string => text.toLowerCase().replace(/[-_]/g, '');
  const leaf = (text: string): string => text.slice(text.lastIndexOf('.') + 1);
  const typed = normalize(key);
  const limit = Math.min(2, Math.max(1, Math.floor(leaf(typed).length / 3)));
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of [...SECTIONS, ...CONFIG_KEYS]) {
    const distance = editDistance(typed, normalize(candidate));
    if (distance <= limit && (best === undefined || distance < best.distance)) best = { candidate, distance };
  }
  return best?.candidate ?? CONFIG_KEYS.find((candidate) => normalize(leaf(candidate)) === leaf(typed));
}
