import { describe, expect, it } from 'vitest';
import { compileNamedParameters, schemaQualifiedNames, splitSqlStatements } from '../../src/projection/sqlLexer.js';

describe('compileNamedParameters', () => {
  it('numbers placeholders in order of first use, reusing the number of a repeated name', () => {
    expect(compileNamedParameters('select :a, :b, :a')).toEqual({ text: 'select $1, $2, $1', names: ['a', 'b'] });
  });

  it('finds placeholders after punctuation and at the ends', () => {
    expect(compileNamedParameters(':a,(:b)=:c||:d')).toEqual({ text: '$1,($2)=$3||$4', names: ['a', 'b', 'c', 'd'] });
  });

  it('casts a placeholder whose type is known, parenthesized before a subscript', () => {
    const types = { data: 'jsonb', streamId: 'text' };
    expect(compileNamedParameters(`select (:data->>'amount')::bigint, :streamId, :other`, types)).toEqual({
      text: `select ($1::jsonb->>'amount')::bigint, $2::text, $3`,
      names: ['data', 'streamId', 'other'],
    });
    expect(compileNamedParameters(`select :data['amount'], :data ['x']`, types).text).toBe(
      `select ($1::jsonb)['amount'], ($1::jsonb) ['x']`,
    );
  });

  describe('never touches', () => {
    it.each([
      ['casts', `select x::text, :a::jsonb, y ::int`, `select x::text, $1::jsonb, y ::int`],
      ['string literals', `select ':a', 'it''s :a', :a`, `select ':a', 'it''s :a', $1`],
      ['escape strings', `select E'it\\'s :a', e'\\\\', :a`, `select E'it\\'s :a', e'\\\\', $1`],
      ['quoted identifiers', `select "col:a", "say ""hi"" :a" from t where x = :a`, `select "col:a", "say ""hi"" :a" from t where x = $1`],
      ['dollar-quoted strings', `select $$ :a ' $$, $fn$ :a $$ nested $$ $fn$, :a`, `select $$ :a ' $$, $fn$ :a $$ nested $$ $fn$, $1`],
      ['line comments', `select 1 -- :a isn't used\n, :a`, `select 1 -- :a isn't used\n, $1`],
      ['block comments, nested', `select /* :a /* :a */ :a */ :a`, `select /* :a /* :a */ :a */ $1`],
      ['array slices and identifiers ending in a colon-like shape', `select arr[lo:hi], arr[1:2], :a`, `select arr[lo:hi], arr[1:2], $1`],
      ['assignments', `select f(x := 1), :a`, `select f(x := 1), $1`],
      ['identifiers containing $', `select a$b, :a`, `select a$b, $1`],
    ])('%s', (_, sql, text) => {
      expect(compileNamedParameters(sql)).toEqual({ text, names: ['a'] });
    });
  });

  it('leaves an unterminated literal alone for PostgreSQL to report', () => {
    expect(compileNamedParameters(`select :a, 'oops :b`)).toEqual({ text: `select $1, 'oops :b`, names: ['a'] });
    expect(compileNamedParameters(`select :a /* :b`)).toEqual({ text: `select $1 /* :b`, names: ['a'] });
  });

  it('refuses positional parameters, outside literals only', () => {
    expect(() => compileNamedParameters('select $1, :a')).toThrow('positional parameter $1');
    expect(compileNamedParameters(`select '$1', :a`).text).toBe(`select '$1', $1`);
  });

  it('returns SQL without placeholders unchanged', () => {
    const sql = `select 1; -- done\n`;
    expect(compileNamedParameters(sql)).toEqual({ text: sql, names: [] });
  });
});

describe('splitSqlStatements', () => {
  it('splits at top-level semicolons only', () => {
    expect(
      splitSqlStatements(`insert into a values (';');\n update b set c = $$;$$ /* ; */; -- ;\n select ";" ;`),
    ).toEqual([`insert into a values (';')`, `update b set c = $$;$$ /* ; */`, `-- ;\n select ";"`]);
  });

  it('drops empty statements and comment-only ones', () => {
    expect(splitSqlStatements(`;; select 1;\n-- just a note\n;  `)).toEqual(['select 1']);
    expect(splitSqlStatements('/* nothing */')).toEqual([]);
  });
});

describe('schemaQualifiedNames', () => {
  const schemas = (sql: string) => schemaQualifiedNames(sql).map((name) => name.text);

  it('finds a schema before a table, a function, a type, and in three-part names', () => {
    expect(schemas('create table if not exists public.balances (id text primary key)')).toEqual(['public.balances']);
    expect(schemas('insert into app.totals (id) values (1)')).toEqual(['app.totals']);
    expect(schemas('update app.totals set n = 1; delete from app.log; truncate app.cache')).toEqual(['app.totals', 'app.log', 'app.cache']);
    expect(schemas('select * from a join app.b on a.id = b.id')).toEqual(['app.b']);
    expect(schemas('create index if not exists totals_n on app.totals (n)')).toEqual(['app.totals']);
    expect(schemas('create trigger touched after insert on app.totals for each row execute function touch()')).toEqual(['app.totals']);
    expect(schemas('select app.money_of(1), x::app.money from t where t.id = app.t.id')).toEqual([
      'app.money_of',
      'app.money',
      'app.t.id',
    ]);
  });

  it('folds unquoted schemas to lower case and keeps quoted ones as written', () => {
    expect(schemaQualifiedNames('insert into "Sales".totals values (1); insert into APP.t values (2)')).toEqual([
      { schema: 'Sales', text: '"Sales".totals' },
      { schema: 'app', text: 'APP.t' },
    ]);
  });

  it('takes a table and its column for what they are', () => {
    const sql = `insert into balances as b (id, n) select e.stream_id, count(*) from projd.batch_events() e
      where extract(year from e.created_at) > 2000 and e.type is distinct from b.last_type
      on conflict (id) do update set n = b.n + excluded.n`;
    expect(schemas(sql)).toEqual(['projd.batch_events']);
  });

  it('looks past strings, comments and numbers', () => {
    expect(schemas(`insert into t values ('public.x', 1.5, :data->>'a') -- from public.y\n`)).toEqual([]);
    expect(schemas(`select $$ from app.t $$ /* into app.u */`)).toEqual([]);
  });
});
