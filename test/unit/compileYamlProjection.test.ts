import { describe, expect, it } from 'vitest';
import { isUserError } from '../../src/errors.js';
import { compileYamlProjection } from '../../src/projection/compileYamlProjection.js';
import { PROJECTION_KIND, type ProjdEvent, type ProjectionDb } from '../../src/projection/types.js';

const event: ProjdEvent = {
  position: 9007199254740993n,
  transactionId: 18446744073709551n,
  streamId: 'account-1',
  streamVersion: 2,
  type: 'account.credited',
  data: { amount: 250 },
  metadata: { actor: 'ada' },
  schemaVersion: 1,
  createdAt: new Date('2024-05-01T10:00:00Z'),
};

function recordingDb(): ProjectionDb & { calls: Array<{ text: string; values: readonly unknown[] | undefined }> } {
  const calls: Array<{ text: string; values: readonly unknown[] | undefined }> = [];
  return {
    calls,
    query: async (text, values) => {
      calls.push({ text, values });
      return { rows: [], rowCount: 0 };
    },
  };
}

/** The UserError message `compileYamlProjection` throws for a file. */
function errorOf(yaml: string, file = 'projections/deposits.yaml'): string {
  try {
    compileYamlProjection(yaml, file);
  } catch (error) {
    expect(isUserError(error)).toBe(true);
    const message = (error as Error).message;
    expect(message).not.toContain('\n');
    return message;
  }
  throw new Error('expected compileYamlProjection to throw');
}

const DEPOSITS = `name: deposits
version: 1
setup: |
  create table if not exists deposits (account_id text primary key, total bigint not null default 0)
reset: truncate deposits
handlers:
  account.credited: |
    insert into deposits (account_id, total) values (:streamId, (:data->>'amount')::bigint)
    on conflict (account_id) do update set total = deposits.total + excluded.total
`;

describe('compileYamlProjection', () => {
  it('compiles the documented format into a projection', () => {
    const projection = compileYamlProjection(DEPOSITS, 'projections/deposits.yaml');
    expect(projection.kind).toBe(PROJECTION_KIND);
    expect(projection.name).toBe('deposits');
    expect(projection.version).toBe(1);
    expect(projection.setup).toEqual([
      'create table if not exists deposits (account_id text primary key, total bigint not null default 0)\n',
    ]);
    expect(projection.reset).toEqual(['truncate deposits']);
    expect(projection.eventTypes).toEqual(['account.credited']);
    expect(projection.source).toBe('projections/deposits.yaml');
    expect(Object.isFrozen(projection)).toBe(true);
  });

  it('runs a handler’s statement with the event bound, placeholders compiled once', async () => {
    const projection = compileYamlProjection(DEPOSITS, 'deposits.yaml');
    const db = recordingDb();
    await projection.handlers.get('account.credited')!(event, db);
    expect(db.calls).toEqual([
      {
        text:
          `insert into deposits (account_id, total) values ($1::text, ($2::jsonb->>'amount')::bigint)\n` +
          `on conflict (account_id) do update set total = deposits.total + excluded.total`,
        values: ['account-1', '{"amount":250}'],
      },
    ]);
  });

  it('binds every placeholder: 64-bit values as decimal strings, JSON as text, the time as a Date', async () => {
    const yaml = `name: all
version: 1
handlers:
  account.credited: >-
    select :position, :transactionId, :streamId, :streamVersion, :type,
    :data, :metadata, :schemaVersion, :createdAt, :position
`;
    const db = recordingDb();
    await compileYamlProjection(yaml, 'all.yaml').handlers.get('account.credited')!(event, db);
    expect(db.calls[0]!.text).toBe(
      'select $1::bigint, $2, $3::text, $4::integer, $5::text, ' +
        '$6::jsonb, $7::jsonb, $8::integer, $9::timestamptz, $1::bigint',
    );
    expect(db.calls[0]!.values).toEqual([
      '9007199254740993',
      '18446744073709551',
      'account-1',
      2,
      'account.credited',
      '{"amount":250}',
      '{"actor":"ada"}',
      1,
      new Date('2024-05-01T10:00:00Z'),
    ]);
  });

  it('runs a list of statements, and statements separated by ;, in order', async () => {
    const yaml = `name: audit
version: 1
setup:
  - create table if not exists audit (position bigint primary key)
  - create table if not exists audit_count (n bigint not null)
handlers:
  account.credited:
    - insert into audit (position) values (:position)
    - |
      update audit_count set n = n + 1;
      delete from audit where position < :position - 100;
`;
    const projection = compileYamlProjection(yaml, 'audit.yaml');
    expect(projection.setup).toHaveLength(2);
    const db = recordingDb();
    await projection.handlers.get('account.credited')!(event, db);
    expect(db.calls).toEqual([
      { text: 'insert into audit (position) values ($1::bigint)', values: ['9007199254740993'] },
      { text: 'update audit_count set n = n + 1', values: [] },
      { text: 'delete from audit where position < $1::bigint - 100', values: ['9007199254740993'] },
    ]);
  });

  it('reads a handler given by an alias as the SQL of its anchor, in a list too', async () => {
    const yaml = `name: touched
version: 1
setup: &table create table if not exists touched (id text primary key)
handlers:
  account.opened: &touch insert into touched (id) values (:streamId) on conflict do nothing
  account.closed: *touch
  account.credited:
    - *touch
    - select :position
`;
    const projection = compileYamlProjection(yaml, 'touched.yml');
    expect(projection.setup).toEqual(['create table if not exists touched (id text primary key)']);
    for (const type of ['account.opened', 'account.closed']) {
      const db = recordingDb();
      await projection.handlers.get(type)!(event, db);
      expect(db.calls).toEqual([
        { text: 'insert into touched (id) values ($1::text) on conflict do nothing', values: ['account-1'] },
      ]);
    }
    const db = recordingDb();
    await projection.handlers.get('account.credited')!(event, db);
    expect(db.calls.map((call) => call.text)).toEqual([
      'insert into touched (id) values ($1::text) on conflict do nothing',
      'select $1::bigint',
    ]);
  });

  it('takes prefix patterns and a quoted catch-all as event types', () => {
    const yaml = `name: patterns
version: 1
handlers:
  account.*: select 1
  '*': select 2
`;
    expect(compileYamlProjection(yaml, 'patterns.yaml').eventTypes).toEqual(['*', 'account.*']);
    expect(errorOf(`name: patterns
version: 1
handlers:
  account*: select 1
`)).toBe(
      `projections/deposits.yaml:4:3: projection 'patterns': event type pattern 'account*' is not valid: ` +
        `'*' stands alone ('*', every event) or ends a prefix ('account.*')`,
    );
  });

  it('compiles a set-based projection: eventTypes and batch SQL, no handlers', () => {
    const projection = compileYamlProjection(
      `name: a\nversion: 1\neventTypes: [x.y, 'x.*']\nbatch: |\n  insert into t select stream_id from projd.batch_events() where data->>'k' = 'v'::text\n`,
      'projections/a.yaml',
    );
    expect(projection.eventTypes).toEqual(['x.*', 'x.y']);
    expect(projection.handlers.size).toBe(0);
    expect(projection.batch).toEqual([`insert into t select stream_id from projd.batch_events() where data->>'k' = 'v'::text\n`]);
  });

  describe('errors name <file>:<line>:<col>', () => {
    it('invalid YAML', () => {
      expect(errorOf('name: deposits\nversion: [1\nhandlers: {}\n')).toMatch(/^projections\/deposits\.yaml:3:1: /);
      expect(errorOf('name: "deposits\n')).toBe('projections/deposits.yaml:2:1: Missing closing "quote');
    });

    it('a duplicated key', () => {
      expect(errorOf('name: a\nname: b\n')).toBe('projections/deposits.yaml:2:1: Map keys must be unique');
    });

    it('several documents', () => {
      expect(errorOf('name: a\n---\nname: b\n')).toBe(
        'projections/deposits.yaml:2:1: a projection file holds one YAML document',
      );
    });

    it('a file that is not a mapping', () => {
      expect(errorOf('')).toBe(
        'projections/deposits.yaml:1:1: expected a mapping with keys name, version, handlers (and setup, reset), got an empty file',
      );
      expect(errorOf('- a\n- b\n')).toContain('projections/deposits.yaml:1:1: expected a mapping');
    });

    it('an invalid value, at its key', () => {
      expect(errorOf(DEPOSITS.replace('version: 1', 'version: "1"'))).toBe(
        `projections/deposits.yaml:2:1: projection 'deposits': version must be a positive integer, got "1"`,
      );
      expect(errorOf(DEPOSITS.replace('name: deposits', 'name: Deposits'))).toMatch(
        /^projections\/deposits\.yaml:1:1: projection 'Deposits': name must match/,
      );
    });

    it('a missing key', () => {
      expect(errorOf('name: deposits\nhandlers:\n  a: select 1\n')).toBe(
        `projections/deposits.yaml:1:1: projection 'deposits': version is required`,
      );
    });

    it('an unknown key, with the key it was likely meant to be', () => {
      expect(errorOf(DEPOSITS.replace('handlers:', 'handler:'))).toBe(
        `projections/deposits.yaml:6:1: projection 'deposits': unknown key 'handler' (did you mean 'handlers'?); ` +
          'the keys are name, version, setup, reset, eventTypes, handlers, batch, handleBatch, upcasters, batchSize, onError, maxAttempts, partitions',
      );
    });

    it('a placeholder in batch SQL, handleBatch, or a listed type without a handler', () => {
      const batchOnly = `name: a\nversion: 1\neventTypes: [x.y]\nbatch:\n  - select 1\n  - select :streamId\n`;
      expect(errorOf(batchOnly)).toBe(
        `projections/deposits.yaml:6:5: projection 'a': batch SQL has no placeholders (found :streamId); it reads the batch's events from projd.batch_events()`,
      );
      expect(errorOf(`name: a\nversion: 1\neventTypes: [x.y]\nhandleBatch: select 1\n`)).toBe(
        `projections/deposits.yaml:4:1: projection 'a': handleBatch is a function, for modules; in YAML write batch (SQL over projd.batch_events())`,
      );
      expect(errorOf(`name: a\nversion: 1\neventTypes: [x.y, x.z]\nhandlers:\n  x.y: select 1\n`)).toBe(
        `projections/deposits.yaml:3:19: projection 'a': eventTypes lists 'x.z', which has no handler (and there is no batch form)`,
      );
    });

    it('a partitions value out of range, at its line', () => {
      expect(errorOf(`name: a\nversion: 1\npartitions: 300\nhandlers:\n  x: select 1\n`)).toBe(
        `projections/deposits.yaml:3:1: projection 'a': partitions must be an integer from 1 to 256, got 300`,
      );
    });

    it('an empty list entry in setup', () => {
      expect(errorOf(`name: a\nversion: 1\nsetup:\n  - create table a (id int)\n  - ""\nhandlers:\n  x: select 1\n`)).toBe(
        `projections/deposits.yaml:5:5: projection 'a': setup[1] must be a non-empty SQL string, got ""`,
      );
    });

    it('an unknown placeholder, naming the event type and the placeholder at its line', () => {
      const yaml = DEPOSITS.replace(`(:data->>'amount')::bigint`, `:amount`);
      expect(errorOf(yaml)).toBe(
        `projections/deposits.yaml:8:65: projection 'deposits': handler for 'account.credited' uses unknown placeholder :amount; ` +
          'the placeholders are :position, :transactionId, :streamId, :streamVersion, :type, :data, :metadata, :schemaVersion, :createdAt',
      );
      expect(errorOf(DEPOSITS.replace(':streamId', ':streamid'))).toContain(
        `handler for 'account.credited' uses unknown placeholder :streamid (did you mean :streamId?)`,
      );
    });

    it('a positional parameter', () => {
      expect(errorOf(DEPOSITS.replace(':streamId', '$1'))).toBe(
        `projections/deposits.yaml:7:21: projection 'deposits': handler for 'account.credited' uses a positional parameter $1; ` +
          'write a named placeholder such as :streamId',
      );
    });

    it('a handler that is not SQL', () => {
      const base = 'name: a\nversion: 1\nhandlers:\n';
      expect(errorOf(`${base}  a.b: 42\n`)).toBe(
        `projections/deposits.yaml:4:3: projection 'a': handler for 'a.b' must be a SQL string or a list of SQL strings, got 42`,
      );
      expect(errorOf(`${base}  a.b:\n`)).toBe(
        `projections/deposits.yaml:4:3: projection 'a': handler for 'a.b' must be a SQL string or a list of SQL strings, got null`,
      );
      expect(errorOf(`${base}  a.b:\n    - select 1\n    - {x: 1}\n`)).toBe(
        `projections/deposits.yaml:6:7: projection 'a': handler for 'a.b' has a list entry that is not a SQL string: an object`,
      );
      expect(errorOf(`${base}  a.b: "-- nothing"\n`)).toBe(
        `projections/deposits.yaml:4:3: projection 'a': handler for 'a.b' has no SQL statement`,
      );
    });

    it('a handler given by an alias, at its anchor', () => {
      const base = 'name: a\nversion: 1\nhandlers:\n';
      expect(errorOf(`${base}  a.b: &sql select :nope\n  a.c: *sql\n`)).toMatch(
        /^projections\/deposits\.yaml:4:20: projection 'a': handler for 'a\.b' uses unknown placeholder :nope;/,
      );
      expect(errorOf('name: a\nversion: 1\nmaxAttempts: &n 3\nhandlers:\n  a.c: [*n]\n')).toBe(
        `projections/deposits.yaml:3:17: projection 'a': handler for 'a.c' has a list entry that is not a SQL string: 3`,
      );
    });

    it('handlers that are not a mapping, or empty', () => {
      expect(errorOf('name: a\nversion: 1\nhandlers: [select 1]\n')).toBe(
        `projections/deposits.yaml:3:1: projection 'a': handlers must be an object of event type → function, got a list`,
      );
      expect(errorOf('name: a\nversion: 1\nhandlers: {}\n')).toBe(
        `projections/deposits.yaml:3:1: projection 'a': handlers must name at least one event type`,
      );
    });

    it('an event type that is not a string', () => {
      expect(errorOf('name: a\nversion: 1\nhandlers:\n  42: select 1\n')).toBe(
        'projections/deposits.yaml:4:3: an event type must be a string, got 42',
      );
    });
  });
});
