import { describe, expect, it } from 'vitest';
import { compileNamedParameters, splitSqlStatements } from '../../src/projection/sqlLexer.js';

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
