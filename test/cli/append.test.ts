import os from 'node:os';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, runCli, type CliResult } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { cliTranscript } from '../helpers/transcript.js';

// `projd append` and `projd query` on a new, empty database, as a user without psql has one:
// append creates projd's tables, query reads them back.
const db = await createTestDatabase({ empty: true });
const cwd = os.tmpdir();
const env = { DATABASE_URL: db.url };

function projd(args: string[], input?: string): Promise<CliResult> {
  return runCli(args, { cwd, env, ...(input === undefined ? {} : { input }) });
}

async function stream(streamId: string): Promise<Array<[number, string, unknown]>> {
  const { rows } = await db.pool.query(
    'select stream_version, type, data from projd.events where stream_id = $1 order by stream_version',
    [streamId],
  );
  return rows.map((row) => [row.stream_version, row.type, row.data]);
}

function expectOneStderrLine(result: CliResult, code: number): void {
  expect(result.code, `stderr: ${result.stderr}`).toBe(code);
  expect(result.stderr, 'exactly one line on stderr').toMatch(/^projd: [^\n]+\n$/);
  expect(result.stdout).toBe('');
}

describe('projd append', () => {
  it('appends one event from the arguments, on a database without projd tables yet', async () => {
    const result = await projd(['append', 'account-1', 'account.opened', '{"owner": "Ada"}']);
    expect(result).toMatchObject({ code: 0, stderr: '', stdout: 'appended account-1@1 (account.opened) at position 1\n' });

    const next = await projd(['append', 'account-1', 'account.closed', '--expected-version', '1']);
    expect(next).toMatchObject({ code: 0, stdout: 'appended account-1@2 (account.closed) at position 2\n' });
    expect(await stream('account-1')).toEqual([
      [1, 'account.opened', { owner: 'Ada' }],
      [2, 'account.closed', {}],
    ]);
  });

  it('appends NDJSON lines from stdin in one go, skipping blank lines, and prints JSON with --json', async () => {
    const input = [
      '{"type": "account.opened", "data": {"owner": "Bob"}}',
      '',
      '{"type": "account.credited", "data": {"amount": 5}, "metadata": {"actor": "ops"}, "schemaVersion": 2}',
      '{"type": "account.credited", "data": {"amount": 7}}',
    ].join('\n');
    const result = await projd(['append', 'account-2', '--expected-version', 'no_stream', '--json'], input);

    expect(result).toMatchObject({ code: 0, stderr: '' });
    const lines = result.stdout.trimEnd().split('\n').map((line) => JSON.parse(line));
    const { rows } = await db.pool.query(
      `select position::text, transaction_id::text, metadata, schema_version from projd.events where stream_id = 'account-2' order by stream_version`,
    );
    expect(lines).toEqual([
      { streamId: 'account-2', streamVersion: 1, type: 'account.opened', position: rows[0].position, transactionId: rows[0].transaction_id },
      { streamId: 'account-2', streamVersion: 2, type: 'account.credited', position: rows[1].position, transactionId: rows[0].transaction_id },
      { streamId: 'account-2', streamVersion: 3, type: 'account.credited', position: rows[2].position, transactionId: rows[0].transaction_id },
    ]);
    expect(rows.map((row) => [row.metadata, row.schema_version])).toEqual([
      [{}, 1],
      [{ actor: 'ops' }, 2],
      [{}, 1],
    ]);
  });

  it('exits 1 with one line on a version conflict, and writes nothing', async () => {
    await projd(['append', 'account-3', 'account.opened', '{}']);
    const args = ['append', 'account-3', 'account.credited', '{"amount": 1}', '--expected-version', '0'];
    const result = await projd(args);

    expectOneStderrLine(result, 1);
    expect(cliTranscript(args, result)).toMatchInlineSnapshot(`
      "$ projd append account-3 account.credited '{"amount": 1}' --expected-version 0
      projd: append: stream 'account-3': expected no events yet, but it is at version 1
      Exit code: 1"
    `);
    expect(await stream('account-3')).toEqual([[1, 'account.opened', {}]]);
  });

  describe('bad input: exit 2, one line naming what is at fault, nothing written', () => {
    // A line ending in … is a prefix.
    it.each<[string, string[], string | undefined, string]>([
      [
        'invalid JSON on a line of stdin',
        ['append', 'bad-1'],
        '{"type": "a", "data": {}}\n{"type": "b", "data": {amount: 1}}\n',
        // The rest is V8's own message, which varies between Node versions.
        `projd: append: stdin line 2: invalid JSON: Expected property name or '}' in JSON at position 23…`,
      ],
      [
        'a line without data',
        ['append', 'bad-2'],
        '{"type": "a", "data": {}}\n\n{"type": "b"}\n',
        `projd: append: stdin line 3: 'data' is missing`,
      ],
      [
        'a line with a stream of its own',
        ['append', 'bad-3'],
        '{"type": "a", "data": {}, "streamId": "x"}\n',
        `projd: append: stdin line 1: unknown key 'streamId'; the keys are type, data, metadata, schemaVersion`,
      ],
      ['nothing on stdin', ['append', 'bad-4'], undefined, `projd: append: no events on stdin; give one per line: {"type": "account.credited", "data": {"amount": 100}}`],
      [
        'invalid JSON as the data argument',
        ['append', 'bad-5', 'account.opened', "{'owner': 'Ada'}"],
        undefined,
        `projd: append: data '{'owner': 'Ada'}': invalid JSON: Expected property name or '}' in JSON at position 1…`,
      ],
      [
        'an expected version that is not one',
        ['append', 'bad-6', 'account.opened', '--expected-version', 'latest'],
        undefined,
        `projd: option '--expected-version <version>' argument 'latest' is invalid. Expected a stream version (0, 1, 2, …), any, no_stream or stream_exists.`,
      ],
    ])('%s', async (_, args, input, line) => {
      const result = await projd(args, input);
      expectOneStderrLine(result, 2);
      if (line.endsWith('…')) expect(result.stderr.startsWith(line.slice(0, -1)), result.stderr).toBe(true);
      else expect(result.stderr).toBe(`${line}\n`);
      expect(await stream(args[1]!)).toEqual([]);
    });
  });
});

describe('projd query', () => {
  it('prints the rows as a table, numbers aligned right, NULL as nothing', async () => {
    await db.pool.query(`create table query_example (id text primary key, owner text, balance bigint)`);
    await db.pool.query(`insert into query_example values ('account-1', 'Ada', 100), ('account-10', null, 5)`);

    const result = await projd(['query', 'select * from query_example order by id']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toBe(
      ['id          owner  balance', 'account-1   Ada        100', 'account-10               5', '(2 rows)', ''].join('\n'),
    );
  });

  it('prints a JSON array of row objects with --json', async () => {
    const result = await projd(['query', `select 1 as one, 'x'::text as text, '{"a": [1]}'::jsonb as doc, null as nothing`, '--json']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(result.stdout)).toEqual([{ one: 1, text: 'x', doc: { a: [1] }, nothing: null }]);
  });

  it.each<[string, string, string]>([
    ['a write', `insert into query_example values ('x', 'y', 1)`, 'projd: query failed: cannot execute INSERT in a read-only transaction'],
    [
      'a second statement that would end the read-only transaction',
      `commit; delete from query_example`,
      'projd: query failed: cannot insert multiple commands into a prepared statement',
    ],
    ['an unknown table', 'select * from no_such_table', 'projd: query failed: relation "no_such_table" does not exist'],
  ])('refuses %s with exit 2, and changes nothing', async (_, sql, line) => {
    await db.pool.query(`create table if not exists query_example (id text primary key, owner text, balance bigint)`);
    const before = await db.pool.query('select * from query_example order by id');

    const result = await projd(['query', sql]);
    expectOneStderrLine(result, 2);
    expect(result.stderr).toBe(`${line}\n`);
    expect((await db.pool.query('select * from query_example order by id')).rows).toEqual(before.rows);
  });
});

describe('projd --version', () => {
  it("prints package.json's version and exits 0", async () => {
    const { version } = JSON.parse(readFileSync(`${REPO_ROOT}package.json`, 'utf8')) as { version: string };
    expect(await runCli(['--version'], { cwd })).toMatchObject({ code: 0, stderr: '', stdout: `${version}\n` });
  });
});
