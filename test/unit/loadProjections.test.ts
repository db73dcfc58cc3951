import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isUserError } from '../../src/errors.js';
import { loadProjectionFile, loadProjections } from '../../src/projection/loadProjections.js';
import { PROJECTION_KIND, type ProjdEvent, type ProjectionDb } from '../../src/projection/types.js';

// Fixtures only: the repository's projections/ folder is the user's, and may hold anything.
const FIXTURE_PROJECTIONS = fileURLToPath(new URL('../fixtures/projections/', import.meta.url));

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'projd-load-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes files (relative path → content) into the test's temp folder. */
async function write(files: Record<string, string>): Promise<void> {
  for (const [relative, content] of Object.entries(files)) {
    const file = path.join(dir, relative);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
  }
}

/** The one-line UserError message `loadProjections` rejects with. */
async function loadError(folder = dir): Promise<string> {
  const error: unknown = await loadProjections(folder).then(
    () => {
      throw new Error('expected loadProjections to fail');
    },
    (failure: unknown) => failure,
  );
  expect(isUserError(error)).toBe(true);
  const message = (error as Error).message;
  expect(message).not.toContain('\n');
  return message;
}

const event: ProjdEvent = {
  position: 1n,
  transactionId: 1n,
  streamId: 'account-1',
  streamVersion: 1,
  type: 'account.credited',
  data: { amount: 5 },
  metadata: {},
  schemaVersion: 1,
  createdAt: new Date(0),
};

const db: ProjectionDb = { query: async () => ({ rows: [], rowCount: 0 }) };

/** A module whose default export is `defineProjection` of `name` and `version` (source expressions). */
function minimalModule(name: string, version = '1', prelude = ''): string {
  return [
    `import { defineProjection } from 'projd';`,
    prelude,
    `export default defineProjection({ name: ${name}, version: ${version}, handlers: { x() {} } });`,
    '',
  ].join('\n');
}

const tsProjection = (name: string) => `import { defineProjection, type ProjdEvent } from 'projd';

interface Credited { amount: number }

export default defineProjection({
  name: '${name}',
  version: 1,
  handlers: {
    'account.credited': async (event: ProjdEvent<Credited>, db) => {
      await db.query('select $1', [event.data.amount]);
    },
  },
});
`;

describe('loadProjections', () => {
  it('loads a TypeScript module importing from projd, where projd is not installed', async () => {
    await write({ 'balances.ts': tsProjection('balances') });

    const [projection, ...rest] = await loadProjections(dir);

    expect(rest).toEqual([]);
    expect(projection!.kind).toBe(PROJECTION_KIND);
    expect(projection!.name).toBe('balances');
    expect(projection!.eventTypes).toEqual(['account.credited']);
    expect(projection!.source).toBe(path.join(dir, 'balances.ts'));
    expect(Object.isFrozen(projection)).toBe(true);
    const calls: unknown[] = [];
    await projection!.handlers.get('account.credited')!(event, {
      query: async (text, values) => {
        calls.push([text, values]);
        return { rows: [], rowCount: 0 };
      },
    });
    expect(calls).toEqual([['select $1', [5]]]);
  });

  it('loads .mjs, .mts, .js, .yaml and .yml files, sorted by file name', async () => {
    await write({
      'e.mjs': minimalModule(`'from_mjs'`, '1', 'await Promise.resolve();'),
      'd.mts': minimalModule(`'from_mts'`, 'version', 'const version: number = 2;'),
      'c.js': minimalModule(`'from_js'`),
      'b.yaml': 'name: from_yaml\nversion: 1\nhandlers:\n  x: select :position\n',
      'a.yml': 'name: from_yml\nversion: 1\nhandlers:\n  x: select 1\n',
    });

    const projections = await loadProjections(dir);

    expect(projections.map((p) => [path.basename(p.source!), p.name, p.version])).toEqual([
      ['a.yml', 'from_yml', 1],
      ['b.yaml', 'from_yaml', 1],
      ['c.js', 'from_js', 1],
      ['d.mts', 'from_mts', 2],
      ['e.mjs', 'from_mjs', 1],
    ]);
  });

  it('accepts a plain object default export, checked like defineProjection', async () => {
    await write({
      'plain.ts': `export default { name: 'plain', version: 1, setup: 'select 1', handlers: { x() {} } };\n`,
    });
    const [projection] = await loadProjections(dir);
    expect(projection).toMatchObject({ kind: PROJECTION_KIND, name: 'plain', setup: ['select 1'] });
  });

  it('accepts module.exports from a CommonJS file', async () => {
    await write({ 'common.js': `module.exports = { name: 'common', version: 1, handlers: { x() {} } };\n` });
    const [projection] = await loadProjections(dir);
    expect(projection!.name).toBe('common');
  });

  it('skips declaration files, dotfiles, test files, other extensions and subfolders, where helpers may live', async () => {
    await write({
      'balances.ts': minimalModule('TABLE', '1', `import { TABLE } from './lib/names.ts';`),
      'lib/names.ts': `export const TABLE: string = 'balances';\n`,
      'lib/other.ts': `throw new Error('a subfolder is not loaded');\n`,
      'types.d.ts': `declare const x: number;\n`,
      '.hidden.ts': `throw new Error('a dotfile is not loaded');\n`,
      'notes.md': '# notes\n',
      'data.json': '{}\n',
      'old.ts.bak': 'nonsense',
      'balances.test.ts': `throw new Error('a test file is not loaded');\n`,
      'balances.spec.mjs': `throw new Error('a spec file is not loaded');\n`,
      'deposits.test.yaml': 'not: [a projection\n',
    });
    await mkdir(path.join(dir, 'folder.ts'));

    const projections = await loadProjections(dir);

    expect(projections.map((p) => p.name)).toEqual(['balances']);
  });

  it('returns no projections for an empty folder', async () => {
    expect(await loadProjections(dir)).toEqual([]);
  });

  it('reports a missing folder, or a file given as the folder', async () => {
    const missing = path.join(dir, 'nope');
    expect(await loadError(missing)).toBe(`projections folder ${missing} not found`);
    await write({ 'file.ts': '' });
    expect(await loadError(path.join(dir, 'file.ts'))).toBe(`projections folder ${path.join(dir, 'file.ts')} is not a folder`);
  });

  describe('reports one line naming the file', () => {
    it('a module that throws on import', async () => {
      await write({ 'broken.ts': `const x: number = 1;\nthrow new Error('boom\\nsecond line');\n` });
      expect(await loadError()).toBe(`${path.join(dir, 'broken.ts')}: cannot load: boom (line 2)`);
    });

    it('the kind of a built-in error', async () => {
      await write({ 'broken.ts': `export default undefinedThing();\n` });
      expect(await loadError()).toBe(
        `${path.join(dir, 'broken.ts')}: cannot load: ReferenceError: undefinedThing is not defined (line 1)`,
      );
    });

    it('a syntax error, with its line and column', async () => {
      await write({ 'broken.ts': `export default {\n  name: 'a',,\n};\n` });
      expect(await loadError()).toBe(`${path.join(dir, 'broken.ts')}: cannot load: syntax error at 2:12: Unexpected token`);
    });

    it('a syntax error in a file it imports, naming that file', async () => {
      await write({
        'balances.ts': `import { helper } from './lib/helper.ts';\nexport default helper;\n`,
        'lib/helper.ts': `export const helper = {\n  name: 'a',,\n};\n`,
      });
      expect(await loadError()).toBe(
        `${path.join(dir, 'balances.ts')}: cannot load: syntax error in ${path.join(dir, 'lib', 'helper.ts')} at 2:12: Unexpected token`,
      );
    });

    it('a broken symbolic link', async () => {
      await symlink(path.join(dir, 'missing.ts'), path.join(dir, 'link.ts'));
      expect(await loadError()).toMatch(new RegExp(`^${escape(path.join(dir, 'link.ts'))}: cannot read: ENOENT`));
    });

    it('an import that cannot be resolved', async () => {
      await write({ 'broken.ts': `import { x } from 'no-such-package-here';\nexport default x;\n` });
      expect(await loadError()).toMatch(
        new RegExp(`^${escape(path.join(dir, 'broken.ts'))}: cannot load: .*Cannot find module 'no-such-package-here'`),
      );
    });

    it('an invalid definition, thrown by defineProjection inside the module', async () => {
      await write({
        'balances.ts': minimalModule(`'balances'`, `'1' as any`),
      });
      expect(await loadError()).toBe(
        `${path.join(dir, 'balances.ts')}: projection 'balances': version must be a positive integer, got "1"`,
      );
    });

    it('an invalid plain object', async () => {
      await write({ 'balances.mjs': `export default { name: 'balances', version: 1, handler: {} };\n` });
      expect(await loadError()).toBe(
        `${path.join(dir, 'balances.mjs')}: projection 'balances': unknown key 'handler' (did you mean 'handlers'?); ` +
          'the keys are name, version, setup, reset, eventTypes, handlers, batch, handleBatch, upcasters, batchSize, onError, maxAttempts, partitions',
      );
    });

    it('no default export', async () => {
      await write({ 'named.ts': minimalModule(`'a'`).replace('export default', 'export const balances =') });
      expect(await loadError()).toBe(
        `${path.join(dir, 'named.ts')}: no default export; write export default defineProjection({ … })`,
      );
    });

    it('an empty module', async () => {
      await write({ 'empty.ts': '// nothing yet\n' });
      expect(await loadError()).toBe(
        `${path.join(dir, 'empty.ts')}: no default export; write export default defineProjection({ … })`,
      );
    });

    it('a default export that is not a projection', async () => {
      await write({ 'fn.ts': `export default function handler() {}\n` });
      expect(await loadError()).toBe(
        `${path.join(dir, 'fn.ts')}: the default export is not a projection (got a function); ` +
          'write export default defineProjection({ … })',
      );
      await rm(path.join(dir, 'fn.ts'));
      await write({ 'list.ts': `export default [1, 2];\n` });
      expect(await loadError()).toContain(`${path.join(dir, 'list.ts')}: the default export is not a projection (got a list)`);
    });

    it('invalid YAML, with its line and column', async () => {
      await write({ 'deposits.yaml': 'name: deposits\nversion: "1"\nhandlers:\n  x: select 1\n' });
      expect(await loadError()).toBe(
        `${path.join(dir, 'deposits.yaml')}:2:1: projection 'deposits': version must be a positive integer, got "1"`,
      );
    });

    it('the first failing file in name order', async () => {
      await write({ 'b.ts': `throw new Error('b');\n`, 'a.ts': `throw new Error('a');\n` });
      expect(await loadError()).toBe(`${path.join(dir, 'a.ts')}: cannot load: a (line 1)`);
    });
  });

  it('reports a name defined twice, naming both files', async () => {
    await write({
      'a.ts': tsProjection('balances'),
      'b.yaml': 'name: balances\nversion: 1\nhandlers:\n  x: select 1\n',
    });
    expect(await loadError()).toBe(
      `projection 'balances' is defined twice: ${path.join(dir, 'a.ts')} and ${path.join(dir, 'b.yaml')}`,
    );
  });

  it('reads an edited file again on the next load, through the transform cache', async () => {
    await mkdir(path.join(dir, 'node_modules'));
    await write({ 'projections/a.ts': minimalModule(`'a'`, '1') });
    const projections = path.join(dir, 'projections');

    expect((await loadProjections(projections))[0]!.version).toBe(1);
    expect(await readdir(path.join(dir, 'node_modules', '.cache', 'projd'))).not.toEqual([]);
    await write({ 'projections/a.ts': minimalModule(`'a'`, '2') });
    expect((await loadProjections(projections))[0]!.version).toBe(2);
  });

  it('leaves no trace in Node’s module system', async () => {
    const require = createRequire(import.meta.url);
    const cachedBefore = Object.keys(require.cache).length;
    const extensionsBefore = Object.keys(require.extensions).sort();
    await write({ 'a.ts': tsProjection('a') });

    await loadProjections(dir);

    expect(Object.keys(require.cache).filter((file) => file.startsWith(dir))).toEqual([]);
    expect(Object.keys(require.cache).length).toBe(cachedBefore);
    expect(Object.keys(require.extensions).sort()).toEqual(extensionsBefore);
  });

  it('gives handler errors a stack trace at the line written in the file', async () => {
    await write({
      'failing.ts': `import { defineProjection } from 'projd';

type Amount = { amount: number };

export default defineProjection({
  name: 'failing',
  version: 1,
  handlers: {
    x: async (event) => {
      const data: Amount = event.data;
      throw new Error('cannot apply ' + data.amount);
    },
  },
});
`,
    });
    const [projection] = await loadProjections(dir);

    const error = await Promise.resolve(projection!.handlers.get('x')!(event, db)).then(
      () => undefined,
      (failure: unknown) => failure as Error,
    );

    expect(error?.message).toBe('cannot apply 5');
    expect(error?.stack?.split('\n')[1]).toContain(`${path.join(dir, 'failing.ts')}:11:`);
  });

  it('loads the fixture projections the other tests copy', async () => {
    const projections = await loadProjections(FIXTURE_PROJECTIONS);
    expect(projections.map((p) => p.name)).toEqual(['ledger']);
    expect(projections.map((p) => p.eventTypes)).toEqual([['account.credited', 'account.debited']]);
  });
});

describe('loadProjectionFile', () => {
  it('loads the one projection of a module or a YAML file, test files included by name', async () => {
    await write({ 'balances.ts': tsProjection('balances'), 'deposits.yml': 'name: deposits\nversion: 2\nhandlers:\n  x: select 1\n' });

    const module = await loadProjectionFile(path.join(dir, 'balances.ts'));
    const yaml = await loadProjectionFile(path.join(dir, 'deposits.yml'));

    expect([module.name, module.source]).toEqual(['balances', path.join(dir, 'balances.ts')]);
    expect([yaml.name, yaml.version, yaml.source]).toEqual(['deposits', 2, path.join(dir, 'deposits.yml')]);
  });

  it('names the file at fault in one line', async () => {
    await write({ 'notes.md': '# notes\n', 'bad.ts': minimalModule(`'Bad'`) });
    const failure = (file: string) =>
      loadProjectionFile(path.join(dir, file)).then(
        () => 'loaded',
        (error: Error) => (isUserError(error) ? error.message : `not a UserError: ${error.message}`),
      );
    expect(await failure('missing.ts')).toBe(`${path.join(dir, 'missing.ts')}: not found`);
    expect(await failure('notes.md')).toBe(
      `${path.join(dir, 'notes.md')}: not a projection file; use .ts, .mts, .js, .mjs, .yaml or .yml`,
    );
    expect(await failure('bad.ts')).toMatch(new RegExp(`^${escape(path.join(dir, 'bad.ts'))}: projection 'Bad': name must match`));
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
