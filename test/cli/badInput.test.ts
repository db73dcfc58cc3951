import net from 'node:net';
import type pg from 'pg';
import { afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { runCli, type CliResult } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { databaseUrl } from '../helpers/postgres.js';
import { writeProject, type Project } from '../helpers/project.js';
import { cliTranscript, escapeRegExp, type Replacements } from '../helpers/transcript.js';

// Every case runs the real bin against a new, empty database (or a broken URL): it must exit 2
// with one line on stderr naming what is at fault, and leave the database as it was.

const empty = await createTestDatabase({ empty: true });
const server = new URL(inject('postgresAdminUrl'));

const VALID_PROJECTION = `import { defineProjection } from 'projd';
export default defineProjection({ name: 'ok', version: 1, handlers: { 'account.credited': async () => {} } });
`;

function moduleProjection(name: string, exportLine = 'export default'): string {
  return `import { defineProjection } from 'projd';
${exportLine} defineProjection({
  name: '${name}',
  version: 1,
  handlers: { 'account.credited': async () => {} },
});
`;
}

let project: Project | undefined;
afterEach(async () => {
  await project?.cleanup();
  project = undefined;
});

interface BadInputOptions {
  /** Files of the temp project the command runs in. */
  files?: Record<string, string>;
  /** `DATABASE_URL`; `''` counts as unset. @defaultValue the empty database */
  databaseUrl?: string;
  /** Replacements for the transcript, before the project folder's. */
  replacements?: Replacements;
}

/**
 * Runs `projd …args` in a temp project (`<project>` in an argument is its folder); checks exit 2,
 * one stderr line and no stack; returns the transcript.
 */
async function badInput(args: string[], options: BadInputOptions = {}): Promise<string> {
  project = await writeProject(options.files ?? {});
  const { dir } = project;
  const argv = args.map((arg) => arg.replaceAll('<project>', dir));
  const result = await runCli(argv, { cwd: dir, env: { DATABASE_URL: options.databaseUrl ?? empty.url } });
  expectUsageError(result);
  return cliTranscript(argv, result, [...(options.replacements ?? []), [dir, '<project>']]);
}

function expectUsageError(result: CliResult): void {
  const shown = `stderr:\n${result.stderr}\nstdout:\n${result.stdout}`;
  expect(result.code, shown).toBe(2);
  expect(result.stderr, 'exactly one line on stderr').toMatch(/^[^\n]+\n$/);
  expect(result.stderr, 'no stack trace').not.toMatch(/^\s+at /m);
}

/** Schemas and relations that are not PostgreSQL's own: none in a database nothing wrote to. */
async function userObjects(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ object: string }>(`
    select n.nspname || coalesce('.' || c.relname, '') as object
      from pg_namespace n
      left join pg_class c on c.relnamespace = n.oid
     where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
       and n.nspname not like 'pg\\_temp\\_%' and n.nspname not like 'pg\\_toast\\_temp\\_%'
       and (n.nspname <> 'public' or c.oid is not null)
     order by 1`);
  return rows.map((row) => row.object);
}

describe('bad input: exit 2, one line on stderr, nothing written', () => {
  afterEach(async () => {
    expect(await userObjects(empty.pool), 'objects in the empty database').toEqual([]);
  });

  describe('config file', () => {
    it('invalid YAML names the file, line and column', async () => {
      const transcript = await badInput(['run'], {
        files: { 'projd.yaml': 'metrics:\n  port: [9464\n', 'projections/ok.ts': VALID_PROJECTION },
      });
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd run
        projd: projd.yaml:3:1: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]
        Exit code: 2"
      `);
    });

    it('a value of the wrong type names the key and the value', async () => {
      const transcript = await badInput(['run'], {
        files: { 'projd.yaml': 'metrics:\n  port: abc\n', 'projections/ok.ts': VALID_PROJECTION },
      });
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd run
        projd: projd.yaml: metrics.port must be an integer from 0 to 65535, got "abc"
        Exit code: 2"
      `);
    });

    it('an unknown key is named, with the key it most likely meant', async () => {
      const transcript = await badInput(['run'], {
        files: { 'projd.yaml': 'metrics:\n  prot: 9464\n', 'projections/ok.ts': VALID_PROJECTION },
      });
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd run
        projd: projd.yaml: unknown key 'metrics.prot' (did you mean 'metrics.port'?)
        Exit code: 2"
      `);
    });

    it('-c naming a missing file names it as given', async () => {
      const transcript = await badInput(['run', '-c', 'missing.yaml'], {
        files: { 'projections/ok.ts': VALID_PROJECTION },
      });
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd run -c missing.yaml
        projd: config file missing.yaml not found
        Exit code: 2"
      `);
    });

    it('-c naming a missing file by its absolute path', async () => {
      const transcript = await badInput(['migrate', '-c', '<project>/conf/projd.yaml']);
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd migrate -c <project>/conf/projd.yaml
        projd: config file <project>/conf/projd.yaml not found
        Exit code: 2"
      `);
    });

    it('no database URL anywhere', async () => {
      const transcript = await badInput(['migrate'], { databaseUrl: '' });
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd migrate
        projd: no database configured: set DATABASE_URL or database.url in projd.yaml
        Exit code: 2"
      `);
    });
  });

  describe('command line', () => {
    it('an unknown flag', async () => {
      const transcript = await badInput(['run', '--bogus']);
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd run --bogus
        projd: unknown option '--bogus'
        Exit code: 2"
      `);
    });

    it('a mistyped flag, with the flag it most likely meant on the same line', async () => {
      const transcript = await badInput(['run', '--confg', 'projd.yaml']);
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd run --confg projd.yaml
        projd: unknown option '--confg' (Did you mean --config?)
        Exit code: 2"
      `);
    });

    it('an unknown command', async () => {
      const transcript = await badInput(['bogus']);
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd bogus
        projd: unknown command 'bogus'
        Exit code: 2"
      `);
    });

    it('a mistyped command, with the command it most likely meant on the same line', async () => {
      const transcript = await badInput(['migrat']);
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd migrat
        projd: unknown command 'migrat' (Did you mean migrate?)
        Exit code: 2"
      `);
    });

    it('a flag without its value', async () => {
      const transcript = await badInput(['run', '-c']);
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd run -c
        projd: option '-c, --config <file>' argument missing
        Exit code: 2"
      `);
    });

    it('a missing required argument', async () => {
      const transcript = await badInput(['failed', 'skip']);
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd failed skip
        projd: missing required argument 'ids'
        Exit code: 2"
      `);
    });

    it('replay without a projection name', async () => {
      const transcript = await badInput(['replay'], { files: { 'projections/ok.ts': VALID_PROJECTION } });
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd replay
        projd: replay needs a projection name, or --all for every projection
        Exit code: 2"
      `);
    });

    it('replay of an unknown projection', async () => {
      const transcript = await badInput(['replay', 'balance'], { files: { 'projections/ok.ts': VALID_PROJECTION } });
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd replay balance
        projd: unknown projection 'balance'; known: ok
        Exit code: 2"
      `);
    });

    it('a --progress-interval the config would refuse as a duration', async () => {
      const transcript = await badInput(['replay', 'ok', '--progress-interval', '0ms'], {
        files: { 'projections/ok.ts': VALID_PROJECTION },
      });
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd replay ok --progress-interval 0ms
        projd: --progress-interval must be a duration from 1ms to 596h, such as 250ms, 5s, 2m or 1h, got "0ms"
        Exit code: 2"
      `);
    });

    it('an argument to a command that takes none', async () => {
      const transcript = await badInput(['migrate', 'now']);
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd migrate now
        projd: too many arguments for 'migrate'. Expected 0 arguments but got 1.
        Exit code: 2"
      `);
    });
  });

  describe('projection files', () => {
    it('a module that does not compile names the file, line and column', async () => {
      const transcript = await badInput(['run'], {
        files: {
          'projections/broken.ts': `import { defineProjection } from 'projd';
export default defineProjection({
  name: 'broken',
  version: 1,
  handlers: { 'account.credited': async (event, db) => { await db.query('select 1',, []); } },
});
`,
        },
      });
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd run
        projd: projections/broken.ts: cannot load: syntax error at 5:84: Unexpected token ','.
        Exit code: 2"
      `);
    });

    it('a module without a default export', async () => {
      const transcript = await badInput(['run'], {
        files: { 'projections/named.ts': moduleProjection('named', 'export const projection =') },
      });
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd run
        projd: projections/named.ts: no default export; write export default defineProjection({ … })
        Exit code: 2"
      `);
    });

    it('an invalid projection name', async () => {
      const transcript = await badInput(['run'], {
        files: { 'projections/bad.ts': moduleProjection('Bad-Name') },
      });
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd run
        projd: projections/bad.ts: projection 'Bad-Name': name must match [a-z][a-z0-9_]* (lowercase letters, digits, _), got "Bad-Name"
        Exit code: 2"
      `);
    });

    it('an invalid event type pattern names the file and the key', async () => {
      const transcript = await badInput(['run'], {
        files: { 'projections/bad.ts': moduleProjection('bad').replace(`'account.credited'`, `'account*'`) },
      });
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd run
        projd: projections/bad.ts: projection 'bad': event type pattern 'account*' is not valid: '*' stands alone ('*', every event) or ends a prefix ('account.*')
        Exit code: 2"
      `);
    });

    it('an upcaster version that is not a positive integer names the file, the type and the key', async () => {
      const upcasters = `upcasters: { 'account.credited': { '1.5': (data) => data } },\n  handlers:`;
      const transcript = await badInput(['run'], {
        files: { 'projections/bad.ts': moduleProjection('bad').replace('handlers:', upcasters) },
      });
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd run
        projd: projections/bad.ts: projection 'bad': upcasters for 'account.credited': version "1.5" must be a positive integer (the version it lifts from)
        Exit code: 2"
      `);
    });

    it('an empty SQL upcaster in a YAML projection names the file, line and key', async () => {
      const transcript = await badInput(['run'], {
        files: {
          'projections/bad.yaml': `name: bad
version: 1
upcasters:
  account.credited:
    1: ""
handlers:
  account.credited: select 1
`,
        },
      });
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd run
        projd: projections/bad.yaml:5:5: projection 'bad': upcaster for 'account.credited' from version 1 must be a SQL expression over data (a non-empty string), got ""
        Exit code: 2"
      `);
    });

    it('two files with the same projection name name both files', async () => {
      const transcript = await badInput(['run'], {
        files: {
          'projections/balances.ts': moduleProjection('balances'),
          'projections/balances_copy.ts': moduleProjection('balances'),
        },
      });
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd run
        projd: projection 'balances' is defined twice: projections/balances.ts and projections/balances_copy.ts
        Exit code: 2"
      `);
    });

    it('a YAML projection with an unknown placeholder names its line and column', async () => {
      const transcript = await badInput(['run'], {
        files: {
          'projections/deposits.yaml': `name: deposits
version: 1
setup: create table if not exists deposits (account_id text primary key, total bigint not null)
handlers:
  account.credited: |
    insert into deposits (account_id, total) values (:streamId, :amount)
`,
        },
      });
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd run
        projd: projections/deposits.yaml:6:65: projection 'deposits': handler for 'account.credited' uses unknown placeholder :amount; the placeholders are :position, :transactionId, :streamId, :streamVersion, :type, :data, :metadata, :schemaVersion, :createdAt
        Exit code: 2"
      `);
    });

    it('a missing projections folder', async () => {
      const transcript = await badInput(['run'], { files: { 'projd.yaml': 'projections:\n  dir: ./src/projections\n' } });
      expect(transcript).toMatchInlineSnapshot(`
        "$ projd run
        projd: projections folder src/projections not found
        Exit code: 2"
      `);
    });
  });
});

describe('bad database: exit 2, one line on stderr', () => {
  let closedPort: number;
  const serverReplacements = (): Replacements => [
    [new RegExp(`127\\.0\\.0\\.1:${closedPort}(?!\\d)`, 'g'), '127.0.0.1:<closed-port>'],
    [server.host, '<server>'],
    // The suite's own server may be any (DATABASE_URL): its user and password are not the point.
    [new RegExp(`//${escapeRegExp(server.username)}(?::\\*\\*\\*)?@<server>`, 'g'), '//<admin>@<server>'],
  ];

  beforeAll(async () => {
    // A port nothing listens on: bound by us a moment ago, then closed.
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    closedPort = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve, reject) => probe.close((error) => (error ? reject(error) : resolve())));
  });

  const files = { 'projections/ok.ts': VALID_PROJECTION };

  it('projd run: unreachable server', async () => {
    const transcript = await badInput(['run'], {
      files,
      databaseUrl: `postgres://postgres:x@127.0.0.1:${closedPort}/postgres`,
      replacements: serverReplacements(),
    });
    expect(transcript).toMatchInlineSnapshot(`
      "$ projd run
      projd: cannot connect to database postgres://postgres:***@127.0.0.1:<closed-port>/postgres: connect ECONNREFUSED 127.0.0.1:<closed-port>
      Exit code: 2"
    `);
  });

  it('projd migrate: unreachable server', async () => {
    const transcript = await badInput(['migrate'], {
      databaseUrl: `postgres://postgres:x@127.0.0.1:${closedPort}/postgres`,
      replacements: serverReplacements(),
    });
    expect(transcript).toMatchInlineSnapshot(`
      "$ projd migrate
      projd: cannot connect to database postgres://postgres:***@127.0.0.1:<closed-port>/postgres: connect ECONNREFUSED 127.0.0.1:<closed-port>
      Exit code: 2"
    `);
  });

  it('projd run: a role the server does not know', async () => {
    const transcript = await badInput(['run'], {
      files,
      databaseUrl: `postgres://nobody:x@${server.host}/postgres`,
      replacements: serverReplacements(),
    });
    expect(transcript).toMatchInlineSnapshot(`
      "$ projd run
      projd: cannot connect to database postgres://nobody:***@<server>/postgres: password authentication failed for user "nobody"
      Exit code: 2"
    `);
  });

  it('projd run: a database that does not exist, and is not created', async () => {
    const missing = 'projd_no_such_database';
    const transcript = await badInput(['run'], {
      files,
      databaseUrl: databaseUrl(server.toString(), missing),
      replacements: serverReplacements(),
    });
    expect(transcript).toMatchInlineSnapshot(`
      "$ projd run
      projd: cannot connect to database postgres://<admin>@<server>/projd_no_such_database: database "projd_no_such_database" does not exist
      Exit code: 2"
    `);
    const { rowCount } = await empty.pool.query('select 1 from pg_database where datname = $1', [missing]);
    expect(rowCount).toBe(0);
  });
});
