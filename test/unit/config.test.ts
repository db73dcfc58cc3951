import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONFIG_KEYS, interpolate, loadConfig, parseDuration, type LoadConfigOptions, type ResolvedConfig } from '../../src/config/index.js';
import { isUserError } from '../../src/errors.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const env = { DATABASE_URL: 'postgres://env-host/envdb' };

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'projd-config-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function writeConfig(text: string, name = 'projd.yaml'): Promise<string> {
  const file = path.join(dir, name);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, text);
  return file;
}

/** Loads `text` as `<dir>/projd.yaml`, found the way the CLI finds it. */
async function load(text: string, options: Partial<LoadConfigOptions> = {}) {
  await writeConfig(text);
  return loadConfig({ env, cwd: dir, ...options });
}

/** The error `loadConfig` throws, checked to be a one-line user error. */
async function loadError(options: Partial<LoadConfigOptions> = {}): Promise<string> {
  const error: unknown = await loadConfig({ env, cwd: dir, ...options }).then(
    () => expect.fail('loadConfig resolved, expected a UserError'),
    (thrown: unknown) => thrown,
  );
  expect(isUserError(error)).toBe(true);
  const { message } = error as Error;
  expect(message).not.toContain('\n');
  return message;
}

describe('loadConfig', () => {
  it('uses the built-in defaults when there is no config file', async () => {
    const config = await loadConfig({ env, cwd: dir });
    expect(config).toEqual({
      database: { url: env.DATABASE_URL, listenUrl: env.DATABASE_URL, poolSize: 10, preparedStatements: true, connectTimeout: 10_000, listenProbeInterval: 30_000 },
      projections: {
        dir: path.join(dir, 'projections'),
        batchSize: 1000,
        sqlBatchSize: 100_000,
        pollInterval: 5000,
        batchTimeout: 30_000,
        onError: 'park',
        maxAttempts: 3,
        maxTransientAttempts: 5,
        synchronousCommit: false,
        rebuild: 'blue-green',
        keepOldTables: false,
      },
      metrics: { host: '127.0.0.1', port: 9464 },
      log: { level: 'info' },
      health: { maxLag: 300_000, stuckAfter: 120_000, stallAfter: 5000 },
      // Unset: projd's own projd.events.
      events: { columns: {} },
      shutdownTimeout: 10_000,
    });
  });

  it('treats an empty file, or one with comments only, as defaults', async () => {
    expect((await load('')).metrics.port).toBe(9464);
    expect((await load('# nothing yet\n')).projections.batchSize).toBe(1000);
  });

  it('reads every key from the file', async () => {
    const config = await load(
      [
        'database:',
        '  url: postgres://file-host/filedb',
        '  listenUrl: postgres://direct-host/filedb',
        '  poolSize: 4',
        '  preparedStatements: false',
        '  connectTimeout: 3s',
        '  listenProbeInterval: 1m',
        'projections:',
        '  dir: /srv/projections',
        '  batchSize: 50',
        '  sqlBatchSize: 5000',
        '  pollInterval: 250ms',
        '  batchTimeout: 1m',
        '  onError: stop',
        '  maxAttempts: 5',
        '  maxTransientAttempts: 8',
        '  synchronousCommit: true',
        '  rebuild: in-place',
        '  keepOldTables: true',
        'metrics:',
        '  host: 0.0.0.0',
        '  port: 0',
        'log:',
        '  level: debug',
        'health:',
        '  maxLag: 30s',
        '  stuckAfter: 90s',
        '  stallAfter: 2s',
        'events:',
        '  table: app.events',
        '  columns:',
        '    position: id',
        '    streamId: aggregate',
        '    streamVersion: version',
        '    type: kind',
        '    data: body',
        '    metadata: meta',
        '    schemaVersion: schema',
        '    createdAt: at',
        '    transactionId: xid',
        "  where: kind <> 'snapshot'",
        'shutdownTimeout: 2m',
      ].join('\n'),
      { env: {} },
    );
    expect(config).toEqual({
      database: {
        url: 'postgres://file-host/filedb',
        listenUrl: 'postgres://direct-host/filedb',
        poolSize: 4,
        preparedStatements: false,
        connectTimeout: 3_000,
        listenProbeInterval: 60_000,
      },
      projections: {
        dir: path.resolve('/srv/projections'),
        batchSize: 50,
        sqlBatchSize: 5000,
        pollInterval: 250,
        batchTimeout: 60_000,
        onError: 'stop',
        maxAttempts: 5,
        maxTransientAttempts: 8,
        synchronousCommit: true,
        rebuild: 'in-place',
        keepOldTables: true,
      },
      metrics: { host: '0.0.0.0', port: 0 },
      log: { level: 'debug' },
      health: { maxLag: 30_000, stuckAfter: 90_000, stallAfter: 2000 },
      events: {
        table: 'app.events',
        columns: {
          position: 'id',
          streamId: 'aggregate',
          streamVersion: 'version',
          type: 'kind',
          data: 'body',
          metadata: 'meta',
          schemaVersion: 'schema',
          createdAt: 'at',
          transactionId: 'xid',
        },
        where: "kind <> 'snapshot'",
      },
      shutdownTimeout: 120_000,
    });
  });

  it('keeps the default for a key or section written without a value', async () => {
    const config = await load('metrics:\n  port:\nlog:\n');
    expect(config.metrics.port).toBe(9464);
    expect(config.log.level).toBe('info');
  });

  it('reads the file named by `file`, relative to cwd', async () => {
    await writeConfig('metrics:\n  port: 1234\n', 'conf/other.yaml');
    const config = await loadConfig({ env, cwd: dir, file: 'conf/other.yaml' });
    expect(config.metrics.port).toBe(1234);
  });

  it('lets DATABASE_URL override database.url, and listenUrl follow it', async () => {
    const config = await load('database:\n  url: postgres://file-host/filedb\n');
    expect(config.database.url).toBe(env.DATABASE_URL);
    expect(config.database.listenUrl).toBe(env.DATABASE_URL);
  });

  it('keeps an explicit listenUrl when DATABASE_URL overrides the url', async () => {
    const config = await load('database:\n  url: postgres://pooled/db\n  listenUrl: postgres://direct/db\n');
    expect(config.database).toMatchObject({ url: env.DATABASE_URL, listenUrl: 'postgres://direct/db' });
  });

  it('ignores an empty DATABASE_URL', async () => {
    const config = await load('database:\n  url: postgres://file-host/filedb\n', { env: { DATABASE_URL: '' } });
    expect(config.database.url).toBe('postgres://file-host/filedb');
  });

  it('accepts a string of digits for an integer key, as ${VAR} gives', async () => {
    const config = await load('metrics:\n  port: ${PORT}\n', { env: { ...env, PORT: '8080' } });
    expect(config.metrics.port).toBe(8080);
  });

  describe('projections.dir', () => {
    it('resolves relative to the config file folder', async () => {
      await writeConfig('projections:\n  dir: ../read-models\n', 'conf/projd.yaml');
      const config = await loadConfig({ env, cwd: dir, file: 'conf/projd.yaml' });
      expect(config.projections.dir).toBe(path.join(dir, 'read-models'));
    });

    it('defaults to ./projections next to the config file', async () => {
      await writeConfig('log:\n  level: warn\n', 'conf/projd.yaml');
      const config = await loadConfig({ env, cwd: dir, file: 'conf/projd.yaml' });
      expect(config.projections.dir).toBe(path.join(dir, 'conf', 'projections'));
    });

    it('defaults to ./projections in cwd when there is no file', async () => {
      const config = await loadConfig({ env, cwd: dir });
      expect(config.projections.dir).toBe(path.join(dir, 'projections'));
    });
  });

  describe('interpolation', () => {
    it('replaces ${VAR} with the variable', async () => {
      const config = await load('database:\n  url: postgres://${DB_HOST}/app\n', { env: { DB_HOST: 'db.internal' } });
      expect(config.database.url).toBe('postgres://db.internal/app');
    });

    it('uses the default of ${VAR:-default} when VAR is unset or empty', async () => {
      const text = 'metrics:\n  host: ${METRICS_HOST:-0.0.0.0}\n';
      expect((await load(text)).metrics.host).toBe('0.0.0.0');
      expect((await load(text, { env: { ...env, METRICS_HOST: '' } })).metrics.host).toBe('0.0.0.0');
      expect((await load(text, { env: { ...env, METRICS_HOST: '10.0.0.1' } })).metrics.host).toBe('10.0.0.1');
    });

    it('reads $${ as a literal ${', async () => {
      const config = await load("database:\n  url: 'postgres://u:p$${x}@h/db'\n", { env: {} });
      expect(config.database.url).toBe('postgres://u:p${x}@h/db');
    });

    it('keeps YAML syntax in a variable as plain text', async () => {
      const config = await load('projections:\n  dir: ${DIR}\n', { env: { ...env, DIR: 'a: [b, {c}]\n# d' } });
      expect(config.projections.dir).toBe(path.join(dir, 'a: [b, {c}]\n# d'));
    });

    it('fails on ${VAR} when VAR is unset, naming the key and the variable', async () => {
      await writeConfig('database:\n  url: ${DATABASE_URL}\n');
      expect(await loadError({ env: {} })).toBe(
        'projd.yaml: database.url: environment variable DATABASE_URL is not set',
      );
    });

    it('works on a single string', () => {
      expect(interpolate('${A}-${B:-b}-$${C}-$5', { A: 'a' })).toBe('a-b-${C}-$5');
      expect(interpolate('${A:-}', {})).toBe('');
      expect(() => interpolate('${A}', {}, 'x.yaml: k')).toThrow('x.yaml: k: environment variable A is not set');
      expect(() => interpolate('${A', {})).toThrow("unterminated '${' (write '$${' for a literal '${')");
      expect(() => interpolate('${1A}', {})).toThrow("invalid reference '${1A}': use ${NAME} or ${NAME:-default}");
    });
  });

  describe('errors', () => {
    it('fails when the named file does not exist', async () => {
      expect(await loadError({ file: 'missing.yaml' })).toBe('config file missing.yaml not found');
    });

    it('fails when the named file is a folder', async () => {
      await mkdir(path.join(dir, 'conf'));
      expect(await loadError({ file: 'conf' })).toBe('config file conf is a folder');
    });

    it('fails when no database is configured', async () => {
      expect(await loadError({ env: {} })).toBe(
        'no database configured: set DATABASE_URL or database.url in projd.yaml',
      );
      await writeConfig('log:\n  level: info\n', 'conf/x.yaml');
      expect(await loadError({ env: {}, file: 'conf/x.yaml' })).toBe(
        'no database configured: set DATABASE_URL or database.url in conf/x.yaml',
      );
    });

    it.each([
      ['invalid YAML', 'metrics:\n  port: [9464\n', 'projd.yaml:3:1: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]'],
      ['a duplicate key', 'log:\n  level: info\n  level: warn\n', 'projd.yaml:3:3: invalid YAML: Map keys must be unique'],
      ['two documents', 'log: {}\n---\nlog: {}\n', 'projd.yaml:2:1: invalid YAML: a config file holds one document, found a second one'],
      ['a top level that is not a mapping', '- a\n- b\n', 'projd.yaml: the top level must be a mapping of keys, got a list'],
      ['a mistyped key', 'metrics:\n  prot: 1\n', "projd.yaml: unknown key 'metrics.prot' (did you mean 'metrics.port'?)"],
      ['a mistyped section', 'metric:\n  port: 1\n', "projd.yaml: unknown key 'metric' (did you mean 'metrics'?)"],
      ['a snake_case key', 'database:\n  pool_size: 1\n', "projd.yaml: unknown key 'database.pool_size' (did you mean 'database.poolSize'?)"],
      ['a key in the wrong section', 'port: 1\n', "projd.yaml: unknown key 'port' (did you mean 'metrics.port'?)"],
      ['an unknown key', 'colour: blue\n', "projd.yaml: unknown key 'colour'"],
      ['a dotted key', 'metrics.port: 1\n', "projd.yaml: unknown key 'metrics.port' (write nested keys, not a dotted name)"],
      ['a section that is not a mapping', 'metrics: 9464\n', 'projd.yaml: metrics must be a mapping, got 9464'],
      ['a port that is not a number', 'metrics:\n  port: abc\n', 'projd.yaml: metrics.port must be an integer from 0 to 65535, got "abc"'],
      ['a port out of range', 'metrics:\n  port: 70000\n', 'projd.yaml: metrics.port must be an integer from 0 to 65535, got 70000'],
      ['a pool of 0', 'database:\n  poolSize: 0\n', 'projd.yaml: database.poolSize must be an integer from 1 to 1000, got 0'],
      ['a fractional batch size', 'projections:\n  batchSize: 1.5\n', 'projd.yaml: projections.batchSize must be an integer from 1 to 100000, got 1.5'],
      ['a batch size too large', 'projections:\n  batchSize: 100001\n', 'projd.yaml: projections.batchSize must be an integer from 1 to 100000, got 100001'],
      ['a SQL batch size of 0', 'projections:\n  sqlBatchSize: 0\n', 'projd.yaml: projections.sqlBatchSize must be an integer from 1 to 100000, got 0'],
      ['a zero poll interval', 'projections:\n  pollInterval: 0s\n', 'projd.yaml: projections.pollInterval must be a duration from 1ms to 596h, such as 250ms, 5s, 2m or 1h, got "0s"'],
      ['a duration in words', 'shutdownTimeout: 5 minutes\n', 'shutdownTimeout must be a duration from 1ms to 596h, such as 250ms, 5s, 2m or 1h, got "5 minutes"'],
      ['an unknown log level', 'log:\n  level: verbose\n', 'projd.yaml: log.level must be one of trace, debug, info, warn, error, fatal, silent, got "verbose"'],
      ['an empty host', "metrics:\n  host: ''\n", 'projd.yaml: metrics.host must be a non-empty string, got ""'],
      ['a url that is not a string', 'database:\n  url: [a]\n', 'projd.yaml: database.url must be a non-empty string, got a list'],
      ['an interpolated bad value', 'metrics:\n  port: ${PORT:-http}\n', 'projd.yaml: metrics.port must be an integer from 0 to 65535, got "http" (from "${PORT:-http}")'],
    ])('names the file, key and value for %s', async (_case, text, message) => {
      await writeConfig(text);
      const expected = message.startsWith('projd.yaml') ? message : `projd.yaml: ${message}`;
      expect(await loadError()).toBe(expected);
    });
  });
});

describe('parseDuration', () => {
  it.each([
    [250, 250],
    [1, 1],
    ['250ms', 250],
    ['596h', 596 * 3_600_000],
    ['5s', 5000],
    ['1.5s', 1500],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['.5s', 500],
  ])('reads %j as %d ms', (value, ms) => {
    expect(parseDuration(value, 'k')).toBe(ms);
  });

  it.each(['5', '5 s', '5sec', '-1s', '1d', '', 's', '0ms', '0', '597h'])('refuses %j', (value) => {
    expect(() => parseDuration(value, 'projections.pollInterval')).toThrow(
      `projections.pollInterval must be a duration from 1ms to 596h, such as 250ms, 5s, 2m or 1h, got ${JSON.stringify(value)}`,
    );
  });

  it('refuses zero, negative, too long, infinite and non-numeric values', () => {
    for (const value of [0, -1, 596 * 3_600_000 + 1, Number.POSITIVE_INFINITY, Number.NaN, true, null, {}]) {
      expect(() => parseDuration(value, '--poll-interval')).toThrow(/^--poll-interval must be a duration/);
    }
  });
});

describe('config.example.yaml', () => {
  const examplePath = path.join(repoRoot, 'config.example.yaml');

  it('documents every accepted key', async () => {
    const tree: unknown = parse(await readFile(examplePath, 'utf8'));
    const written = new Set<string>();
    const collect = (node: unknown, prefix: string): void => {
      if (typeof node !== 'object' || node === null) return;
      for (const [key, value] of Object.entries(node)) {
        written.add(prefix + key);
        collect(value, `${prefix}${key}.`);
      }
    };
    collect(tree, '');
    expect(CONFIG_KEYS.filter((key) => !written.has(key))).toEqual([]);
  });

  it('loads as it is', async () => {
    const config = await loadConfig({ env, cwd: dir, file: examplePath });
    expect(config.database).toEqual({ url: env.DATABASE_URL, listenUrl: env.DATABASE_URL, poolSize: 10, preparedStatements: true, connectTimeout: 10_000, listenProbeInterval: 30_000 });
    expect(config.projections.dir).toBe(path.join(repoRoot, 'projections'));
  });

  it('holds the built-in defaults', async () => {
    const withoutDir = (config: ResolvedConfig) => ({ ...config, projections: { ...config.projections, dir: '' } });
    const example = await loadConfig({ env, cwd: dir, file: examplePath });
    const defaults = await loadConfig({ env, cwd: dir });
    expect(withoutDir(example)).toEqual(withoutDir(defaults));
  });
});
