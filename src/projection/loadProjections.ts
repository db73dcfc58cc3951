import { existsSync, statSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createJiti, type Jiti, type ModuleCache } from 'jiti';
import { errorMessage, isUserError, UserError } from '../errors.js';
import { compileYamlProjection } from './compileYamlProjection.js';
import { describeValue, firstLine } from '../text.js';
import { checkProjectionDefinition, isProjection } from './defineProjection.js';
import { transpileAhead } from './transpileAhead.js';
import type { Projection } from './types.js';
import { upcastersDefinition } from './upcasters.js';

const MODULE_FILE = /\.(?:ts|mts|js|mjs)$/;
/** Inline source maps in transpiled modules; part of the transform cache's file names. */
const SOURCE_MAPS = true;
const YAML_FILE = /\.ya?ml$/;
const DECLARATION_FILE = /\.d\.[cm]?ts$/;
/** `balances.test.ts`, `balances.spec.mjs`: a projection's tests may sit next to it. */
const TEST_FILE = /\.(?:test|spec)\.[^.]+$/;
const USAGE = 'write export default defineProjection({ … })';

export interface LoadProjectionsOptions {
  /**
   * Told of each file that cannot be loaded (or defines a name already taken), which is then
   * left out, instead of failing the whole load: for commands that only read, like `status`.
   * @defaultValue unset: the first such file throws
   */
  onRefusedFile?: (error: UserError) => void;
}

/**
 * Loads one projection per file directly in `dir` (`.ts`, `.mts`, `.js`, `.mjs`: default
 * export; `.yaml`, `.yml`: declarative SQL), in file-name order. Dotfiles, `*.d.ts`, test
 * files (`*.test.*`, `*.spec.*`) and subfolders are skipped, so helpers can live in a
 * subfolder and tests next to their projection. An empty folder gives `[]`.
 *
 * @throws UserError, one line naming the file: a missing folder, a module that cannot be
 *   loaded or exports no projection, an invalid definition, a name defined twice.
 */
export async function loadProjections(dir: string, options: LoadProjectionsOptions = {}): Promise<Projection[]> {
  const files = await listProjectionFiles(dir);
  const cacheDir = transformCacheDir(dir);
  const modules = files.filter((file) => !YAML_FILE.test(file));
  if (cacheDir && modules.length > 0) await transpileAhead(modules, { fsCache: cacheDir, sourceMaps: SOURCE_MAPS });
  let jiti: Jiti | undefined;
  // One module cache per load: files share what they import (projd itself among them),
  // and the next load reads every file afresh.
  const moduleCache: ModuleCache = {};
  const projections: Projection[] = [];
  const definedIn = new Map<string, string>();

  for (const file of files) {
    const shown = displayPath(file);
    let projection: Projection;
    try {
      if (YAML_FILE.test(file)) {
        projection = await loadYamlFile(file, shown);
      } else {
        jiti ??= createModuleLoader(cacheDir);
        projection = projectionOf(await importModule(jiti, file, shown, moduleCache), shown);
      }

      const previous = definedIn.get(projection.name);
      if (previous !== undefined) {
        throw new UserError(`projection '${projection.name}' is defined twice: ${previous} and ${shown}`);
      }
    } catch (error) {
      if (!options.onRefusedFile || !isUserError(error)) throw error;
      options.onRefusedFile(error);
      continue;
    }
    definedIn.set(projection.name, shown);
    projections.push(Object.freeze({ ...projection, source: file }));
  }
  return projections;
}

/**
 * Loads the one projection of `file` (a module or a YAML file, as in a projections folder),
 * e.g. for a test of that projection.
 *
 * @throws UserError, one line naming the file, as `loadProjections` does.
 */
export async function loadProjectionFile(file: string): Promise<Projection> {
  const shown = displayPath(file);
  const stats = await stat(file).catch((error: unknown) => {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new UserError(`${shown}: ${missing ? 'not found' : `cannot read: ${errorMessage(error)}`}`, { cause: error });
  });
  if (!stats.isFile()) throw new UserError(`${shown}: not a file`);
  let projection: Projection;
  if (YAML_FILE.test(file)) {
    projection = await loadYamlFile(file, shown);
  } else if (MODULE_FILE.test(file)) {
    projection = projectionOf(await importModule(createModuleLoader(path.dirname(file)), file, shown, {}), shown);
  } else {
    throw new UserError(`${shown}: not a projection file; use .ts, .mts, .js, .mjs, .yaml or .yml`);
  }
  return Object.freeze({ ...projection, source: file });
}

async function loadYamlFile(file: string, shown: string): Promise<Projection> {
  const text = await readFile(file, 'utf8').catch((error: unknown) => {
    throw new UserError(`${shown}: cannot read: ${errorMessage(error)}`, { cause: error });
  });
  return compileYamlProjection(text, shown);
}

async function listProjectionFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    if (!(await stat(dir)).isDirectory()) throw new UserError(`projections folder ${displayPath(dir)} is not a folder`);
    names = await readdir(dir);
  } catch (error) {
    if (isUserError(error)) throw error;
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new UserError(`projections folder ${displayPath(dir)} not found`, { cause: error });
    }
    throw new UserError(`cannot read projections folder ${displayPath(dir)}: ${errorMessage(error)}`, { cause: error });
  }

  const files: string[] = [];
  for (const name of names.sort()) {
    if (name.startsWith('.') || DECLARATION_FILE.test(name) || TEST_FILE.test(name)) continue;
    if (!MODULE_FILE.test(name) && !YAML_FILE.test(name)) continue;
    const file = path.join(dir, name);
    // stat, not the directory entry, so a symlinked projection counts as a file.
    const stats = await stat(file).catch((error: unknown) => {
      throw new UserError(`${displayPath(file)}: cannot read: ${errorMessage(error)}`, { cause: error });
    });
    if (stats.isFile()) files.push(file);
  }
  return files;
}

/**
 * The jiti instance that runs projection modules, TypeScript included, without a build step.
 * - `alias`: `import … from 'projd'` resolves to this very package, even where projd is not
 *   installed next to the projections.
 * - `moduleCache: false`: nothing is added to Node's `require.cache`; each load re-reads files.
 *   jiti installs no require or loader hooks: only the files it is asked for go through it.
 * - `sourceMaps`: jiti keeps line numbers as written anyway (so stack traces point at the
 *   right line); the inline map lets a debugger (`node --inspect`) show the source as written.
 * - `fsCache`: transpiled output in `node_modules/.cache/projd` of the project, keyed by file
 *   path and checked against a hash of the source, so an edited file is transpiled again.
 *   With a cache, the modules are transpiled into it beforehand on a worker thread
 *   (`transpileAhead`), so the transpiler never loads into this process.
 */
function createModuleLoader(fsCache: string | false): Jiti {
  return createJiti(import.meta.url, {
    alias: { projd: projdEntry() },
    moduleCache: false,
    fsCache,
    sourceMaps: SOURCE_MAPS,
    tryNative: false,
  });
}

async function importModule(jiti: Jiti, file: string, shown: string, cache: ModuleCache): Promise<unknown> {
  const filename = path.resolve(file);
  try {
    const source = await readFile(filename, 'utf8');
    // Transpiled even when Node could import it natively, so `projd` always resolves by the alias.
    return await jiti.evalModule(source, { id: filename, filename, async: true, forceTranspile: true, cache });
  } catch (error) {
    if (isUserError(error)) throw new UserError(`${shown}: ${firstLine(error.message)}`, { cause: error });
    throw new UserError(`${shown}: cannot load: ${loadFailure(error, filename)}`, { cause: error });
  }
}

/** The module's default export as a checked projection, or a UserError naming the file. */
function projectionOf(exports: unknown, shown: string): Projection {
  const exported = defaultExport(exports);
  if (!exported.found) {
    throw new UserError(`${shown}: no default export; ${USAGE}`);
  }
  const check = checkProjectionDefinition(isProjection(exported.value) ? definitionOf(exported.value) : exported.value);
  if (check.ok) return check.projection;
  if (check.path.length === 0) {
    const got = describeValue(exported.value);
    throw new UserError(`${shown}: the default export is not a projection (got ${got}); ${USAGE}`);
  }
  throw new UserError(`${shown}: ${check.message}`);
}

/**
 * Turns a projection built by any copy of projd back into a definition, so it goes through
 * this copy's checks and comes out in this copy's shape.
 */
function definitionOf(projection: Projection): unknown {
  const { name, version, setup, reset, handlers, eventTypes, batch, handleBatch, upcasters, batchSize, onError, maxAttempts, partitions } =
    projection;
  if (!(handlers instanceof Map)) return projection;
  return {
    name,
    version,
    setup: [...setup],
    reset: [...reset],
    ...(handlers.size === 0 ? {} : { handlers: Object.fromEntries(handlers) }),
    ...(eventTypes === undefined ? {} : { eventTypes: [...eventTypes] }),
    ...(batch === undefined ? {} : { batch: [...batch] }),
    ...(handleBatch === undefined ? {} : { handleBatch }),
    // A map in this copy's shape; absent from projections of copies that predate upcasters.
    ...(upcasters instanceof Map ? { upcasters: upcastersDefinition(upcasters) } : {}),
    ...(batchSize === undefined ? {} : { batchSize }),
    ...(onError === undefined ? {} : { onError }),
    ...(maxAttempts === undefined ? {} : { maxAttempts }),
    // Absent from a projection built by a copy of projd that predates partitions.
    ...(partitions === undefined ? {} : { partitions }),
  };
}

type DefaultExport = { found: true; value: unknown } | { found: false };

/**
 * Reads property descriptors rather than `exports.default`: jiti wraps exports in a proxy
 * whose `default` falls back to the module itself.
 */
function defaultExport(exports: unknown): DefaultExport {
  if (typeof exports !== 'object' || exports === null) return { found: true, value: exports };
  const descriptor = Reflect.getOwnPropertyDescriptor(exports, 'default');
  if (descriptor !== undefined) {
    return { found: true, value: descriptor.get === undefined ? descriptor.value : descriptor.get.call(exports) };
  }
  const isEsModule = Reflect.getOwnPropertyDescriptor(exports, '__esModule')?.value === true;
  if (isEsModule || Reflect.ownKeys(exports).length === 0) return { found: false };
  // CommonJS: `module.exports = …` is the default export, as when Node imports it.
  return { found: true, value: exports };
}

/** The first line of a load failure, with the position of a syntax error. */
function loadFailure(error: unknown, filename: string): string {
  const message = errorMessage(error);
  // jiti reports a syntax error as "<Code>: <message> \n <file>:<line>:<col>".
  const syntax = /^[\w.]+: (?<text>[^\n]*?)\s*\n\s*(?<file>\S.*):(?<line>\d+):(?<col>\d+)\s*$/.exec(message);
  if (syntax?.groups !== undefined) {
    const { text, file, line, col } = syntax.groups;
    const where = file === filename ? '' : ` in ${displayPath(file!)}`;
    return `syntax error${where} at ${line}:${col}: ${text}`;
  }
  let text = firstLine(message);
  if (error instanceof Error && error.name !== 'Error' && !text.startsWith(error.name)) text = `${error.name}: ${text}`;
  const line = thrownAtLine(error, filename);
  return line === undefined ? text : `${text} (line ${line})`;
}

/** The line of the file itself in the error's top stack frame, when it was thrown there. */
function thrownAtLine(error: unknown, filename: string): string | undefined {
  if (!(error instanceof Error) || error.stack === undefined) return undefined;
  const frame = error.stack.split('\n').find((line) => /^\s+at /.test(line));
  const location = frame === undefined ? null : /\(?(?<file>[^\s()]+):(?<line>\d+):\d+\)?$/.exec(frame);
  return location?.groups?.file === filename ? location.groups.line : undefined;
}

let projdEntryPath: string | undefined;

/** This package's entry: `dist/index.js` when built, `src/index.ts` when run from source. */
function projdEntry(): string {
  projdEntryPath ??= ['../index.js', '../index.ts']
    .map((candidate) => fileURLToPath(new URL(candidate, import.meta.url)))
    .find((candidate) => existsSync(candidate));
  if (projdEntryPath === undefined) throw new Error(`projd's entry module is missing next to ${import.meta.url}`);
  return projdEntryPath;
}

/** `<project>/node_modules/.cache/projd`, the nearest `node_modules` above `dir`; no cache without one. */
function transformCacheDir(dir: string): string | false {
  let current = path.resolve(dir);
  for (;;) {
    const modules = path.join(current, 'node_modules');
    if (existsSync(modules) && statSync(modules).isDirectory()) return path.join(modules, '.cache', 'projd');
    const parent = path.dirname(current);
    if (parent === current) return false;
    current = parent;
  }
}

/** Paths inside the working directory are shown relative to it, as the user typed them. */
function displayPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative === '' || relative.startsWith('..') || path.isAbsolute(relative) ? file : relative;
}
