// The SQL lexer behind YAML handlers: just enough of PostgreSQL's lexical rules to find the
// `:name` placeholders and the top-level `;` in a handler's SQL, and to leave everything else alone.

/** A statement with `$1…$n` in place of named placeholders; `names[i]` fills `$(i+1)`. */
export interface NamedParameters {
  text: string;
  names: string[];
}

/**
 * Rewrites `:name` placeholders to `$1…$n` (a name used twice gets the same number), leaving
 * `::casts`, string literals (`'…'`, `E'…'`), quoted identifiers, dollar-quoted strings and
 * comments untouched. A name listed in `types` becomes `$n::type`; a name listed in `render`
 * becomes the SQL it returns for that (`$n::type`), e.g. an expression over the parameter.
 *
 * @throws Error on a positional `$1`, which cannot be mixed with named placeholders.
 */
export function compileNamedParameters(
  sql: string,
  types: Readonly<Record<string, string>> = {},
  render: Readonly<Record<string, (parameter: string) => string>> = {},
): NamedParameters {
  const names: string[] = [];
  let text = '';
  for (const token of tokenizeSql(sql)) {
    if (token.kind === 'positional') {
      throw new Error(`positional parameter ${token.text}; write a named placeholder such as :streamId`);
    }
    if (token.kind !== 'placeholder') {
      text += token.text;
      continue;
    }
    let index = names.indexOf(token.name);
    if (index === -1) index = names.push(token.name) - 1;
    const type = Object.hasOwn(types, token.name) ? types[token.name] : undefined;
    const rendered = Object.hasOwn(render, token.name) ? render[token.name] : undefined;
    if (rendered !== undefined) {
      text += rendered(type === undefined ? `$${index + 1}` : `$${index + 1}::${type}`);
    } else if (type === undefined) {
      text += `$${index + 1}`;
    } else {
      // `$1::jsonb[0]` would read as a cast to an array type.
      const subscripted = sql.slice(token.start + token.text.length).trimStart().startsWith('[');
      text += subscripted ? `($${index + 1}::${type})` : `$${index + 1}::${type}`;
    }
  }
  return { text, names };
}

/** Splits SQL at top-level `;`, dropping statements that hold only spaces and comments. */
export function splitSqlStatements(sql: string): string[] {
  const statements: string[] = [];
  let start = 0;
  let significant = false;
  for (const token of tokenizeSql(sql)) {
    if (token.kind === 'semicolon') {
      if (significant) statements.push(sql.slice(start, token.start).trim());
      start = token.start + 1;
      significant = false;
    } else if (token.kind !== 'comment' && token.text.trim() !== '') {
      significant = true;
    }
  }
  if (significant) statements.push(sql.slice(start).trim());
  return statements;
}

/** `projd.batch_events()` as written in code (any case, spaces allowed around `.` and in `()`). */
const BATCH_EVENTS_CALL = /(?<![\p{L}\p{N}_$."])projd\s*\.\s*batch_events\s*\(\s*\)/giu;
const WORD = /^[A-Za-z_][A-Za-z0-9_$]*/;
/**
 * Words that may follow a FROM item and are not its alias: the rest of the FROM clause, the
 * clauses after it, and what ends a subquery or set operation.
 */
const NOT_AN_ALIAS = new Set([
  'where', 'join', 'inner', 'left', 'right', 'full', 'cross', 'natural', 'on', 'using', 'group', 'having',
  'order', 'limit', 'offset', 'fetch', 'for', 'window', 'union', 'intersect', 'except', 'returning', 'then',
  'else', 'end', 'and', 'or', 'when', 'into', 'select', 'values', 'do', 'set',
]);

/**
 * Replaces each call `projd.batch_events()` in code (not in strings or comments) with
 * `replacement(aliased)`: `aliased` says whether an alias follows (`… e`, `… as e`), so the
 * replacement can name itself `batch_events` when none does, as the function call would.
 *
 * @throws Error, its message what the SQL does that cannot be replaced: a call `with ordinality`,
 *   which only a function call can have, or the function named by a quoted identifier.
 */
export function replaceBatchEventsCalls(sql: string, replacement: (aliased: boolean) => string): string {
  const tokens = tokenizeSql(sql);
  let text = '';
  for (const [index, token] of tokens.entries()) {
    if (token.kind === 'quoted' && token.text === '"batch_events"') {
      throw new Error('names "batch_events" quoted; write projd.batch_events() unquoted');
    }
    if (token.kind !== 'code') {
      text += token.text;
      continue;
    }
    text += token.text.replace(BATCH_EVENTS_CALL, (call: string, offset: number) => {
      const follows = nextWord(token.text.slice(offset + call.length), tokens.slice(index + 1));
      if (follows === 'with') throw new Error('reads projd.batch_events() with ordinality; number the rows with row_number() over () instead');
      return replacement(follows !== null && (follows === '"' || !NOT_AN_ALIAS.has(follows)));
    });
  }
  return text;
}

/**
 * The first word of code after a call, lowercased (`'"'` for a quoted identifier), skipping
 * spaces and comments; null when punctuation or the end comes first.
 */
function nextWord(rest: string, following: readonly SqlToken[]): string | null {
  for (const { kind, text } of [{ kind: 'code' as const, text: rest }, ...following]) {
    if (kind === 'comment' || text.trim() === '') continue;
    if (kind === 'quoted') return text.startsWith('"') ? '"' : null;
    if (kind !== 'code') return null;
    return WORD.exec(text.trimStart())?.[0]?.toLowerCase() ?? null;
  }
  return null;
}

type SqlToken =
  | { kind: 'code' | 'quoted' | 'comment' | 'semicolon' | 'positional'; text: string; start: number }
  | { kind: 'placeholder'; name: string; text: string; start: number };

/** Letters, digits, `_`, `$` and non-ASCII letters continue an identifier in PostgreSQL. */
const IDENTIFIER_CHAR = /[\p{L}\p{N}_$]/u;
const PLACEHOLDER = /:([A-Za-z_][A-Za-z0-9_]*)/y;
const POSITIONAL = /\$\d+/y;
const DOLLAR_QUOTE_OPEN = /\$(?:[\p{L}_][\p{L}\p{N}_]*)?\$/uy;

/**
 * Cuts SQL into code, quoted text (strings, identifiers, dollar quotes), comments, `;`,
 * `:name` placeholders and `$n` parameters. Concatenating every token's text gives the input
 * back. Unterminated quotes and comments run to the end; PostgreSQL reports them.
 */
function tokenizeSql(sql: string): SqlToken[] {
  const tokens: SqlToken[] = [];
  let codeStart = 0;
  let i = 0;
  const emit = (kind: SqlToken['kind'], end: number, name = ''): void => {
    if (codeStart < i) tokens.push({ kind: 'code', text: sql.slice(codeStart, i), start: codeStart });
    const text = sql.slice(i, end);
    tokens.push(kind === 'placeholder' ? { kind, name, text, start: i } : { kind, text, start: i });
    i = end;
    codeStart = end;
  };
  const isIdentifierChar = (index: number): boolean => index >= 0 && IDENTIFIER_CHAR.test(sql[index]!);

  while (i < sql.length) {
    const char = sql[i]!;
    const next = sql[i + 1];
    if (char === "'") {
      // E'…' strings also escape with a backslash: E'it\'s'.
      const escapes = (sql[i - 1] === 'e' || sql[i - 1] === 'E') && !isIdentifierChar(i - 2);
      emit('quoted', endOfQuoted(sql, i, "'", escapes));
    } else if (char === '"') {
      emit('quoted', endOfQuoted(sql, i, '"', false));
    } else if (char === '-' && next === '-') {
      const newline = sql.indexOf('\n', i);
      emit('comment', newline === -1 ? sql.length : newline);
    } else if (char === '/' && next === '*') {
      emit('comment', endOfBlockComment(sql, i));
    } else if (char === '$' && !isIdentifierChar(i - 1)) {
      POSITIONAL.lastIndex = i;
      DOLLAR_QUOTE_OPEN.lastIndex = i;
      const positional = POSITIONAL.exec(sql);
      const open = positional === null ? DOLLAR_QUOTE_OPEN.exec(sql) : null;
      if (positional !== null) {
        emit('positional', i + positional[0].length);
      } else if (open !== null) {
        const close = sql.indexOf(open[0], i + open[0].length);
        emit('quoted', close === -1 ? sql.length : close + open[0].length);
      } else {
        i += 1;
      }
    } else if (char === ':' && next === ':') {
      i += 2;
    } else if (char === ':' && !isIdentifierChar(i - 1)) {
      PLACEHOLDER.lastIndex = i;
      const placeholder = PLACEHOLDER.exec(sql);
      if (placeholder === null) i += 1;
      else emit('placeholder', i + placeholder[0].length, placeholder[1]);
    } else if (char === ';') {
      emit('semicolon', i + 1);
    } else {
      i += 1;
    }
  }
  if (codeStart < sql.length) tokens.push({ kind: 'code', text: sql.slice(codeStart), start: codeStart });
  return tokens;
}

/** The index after a quoted string or identifier opened at `start`; a doubled quote escapes. */
function endOfQuoted(sql: string, start: number, quote: string, backslashEscapes: boolean): number {
  let i = start + 1;
  while (i < sql.length) {
    const char = sql[i];
    if (backslashEscapes && char === '\\') {
      i += 2;
    } else if (char === quote) {
      if (sql[i + 1] !== quote) return i + 1;
      i += 2;
    } else {
      i += 1;
    }
  }
  return sql.length;
}

/** PostgreSQL block comments nest: `/* a /* b *\/ still a comment *\/`. */
function endOfBlockComment(sql: string, start: number): number {
  let depth = 0;
  let i = start;
  while (i < sql.length) {
    if (sql.startsWith('/*', i)) {
      depth += 1;
      i += 2;
    } else if (sql.startsWith('*/', i)) {
      depth -= 1;
      i += 2;
      if (depth === 0) return i;
    } else {
      i += 1;
    }
  }
  return sql.length;
}

/** A name written with its schema, as `schemaQualifiedNames` finds it. */
export interface QualifiedName {
  /** The schema, as PostgreSQL reads it: folded to lower case unless quoted. */
  schema: string;
  /** The whole name as written, e.g. `public.balances` or `"Sales".totals`. */
  text: string;
}

/**
 * Names that SQL gives with their schema (`public.balances`, `"Sales".totals`, `app.f(…)`,
 * `::app.money`), as far as the lexical level tells: `a.b` is also a table's column, so a
 * two-part name counts only where a relation, function or type stands (after `from`, `join`,
 * `into`, `update`, `table`, `truncate`, `exists`, `references`, `only`, `using`, `on` in a
 * DDL statement, before `(`, after `::`). Three parts always name a schema.
 */
export function schemaQualifiedNames(sql: string): QualifiedName[] {
  const found: QualifiedName[] = [];
  for (const statement of splitSqlStatements(sql)) {
    const lexemes = lexemesOf(statement);
    const folded = (index: number) => {
      const lexeme = lexemes[index];
      return lexeme?.kind === 'name' ? lexeme.folded : '';
    };
    const ddl = DDL_VERBS.has(folded(0));
    // What each open parenthesis followed: inside `extract(… from t.c)`, `from` takes a column.
    const parens: string[] = [];
    let i = 0;
    while (i < lexemes.length) {
      const lexeme = lexemes[i]!;
      if (lexeme.kind === 'open') parens.push(folded(i - 1));
      if (lexeme.kind === 'close') parens.pop();
      if (lexeme.kind !== 'name') {
        i += 1;
        continue;
      }
      let end = i + 1;
      while (lexemes[end]?.kind === 'dot' && lexemes[end + 1]?.kind === 'name') end += 2;
      const parts = (end - i + 1) / 2;
      if (parts >= 2) {
        const before = lexemes[i - 1];
        const after = lexemes[end];
        const keyword = folded(i - 1);
        const columnFrom = keyword === 'from' && (folded(i - 2) === 'distinct' || FROM_TAKES_VALUE.has(parens.at(-1) ?? ''));
        const relation = (RELATION_KEYWORDS.has(keyword) && !columnFrom) || (keyword === 'on' && ddl);
        if (parts >= 3 || after?.kind === 'open' || before?.kind === 'cast' || relation) {
          found.push({ schema: lexeme.folded, text: lexemes.slice(i, end).map((one) => one.text).join('') });
        }
      }
      i = end;
    }
  }
  return found;
}

type Lexeme = { kind: 'name'; text: string; folded: string } | { kind: 'dot' | 'open' | 'close' | 'cast' | 'other'; text: string };

/** Statements whose `on` is followed by a table (`create index … on t`, `create trigger … on t`). */
const DDL_VERBS = new Set(['create', 'alter', 'drop', 'comment', 'grant', 'revoke']);
const RELATION_KEYWORDS = new Set(['from', 'join', 'into', 'update', 'table', 'truncate', 'exists', 'references', 'only', 'using']);
/** Functions whose arguments use `from` between values: `extract(year from t.at)`. */
const FROM_TAKES_VALUE = new Set(['extract', 'substring', 'trim', 'overlay', 'position']);
const CODE_LEXEME = /\s+|(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|([\p{L}_][\p{L}\p{N}_$]*)|(::)|([.()])|(.)/suy;

/** Names, dots, parentheses and casts of one statement; strings, comments and placeholders are `other`. */
function lexemesOf(sql: string): Lexeme[] {
  const lexemes: Lexeme[] = [];
  for (const token of tokenizeSql(sql)) {
    if (token.kind === 'comment') continue;
    if (token.kind === 'quoted' && token.text.startsWith('"')) {
      lexemes.push({ kind: 'name', text: token.text, folded: token.text.slice(1, -1).replaceAll('""', '"') });
      continue;
    }
    if (token.kind !== 'code') {
      lexemes.push({ kind: 'other', text: token.text });
      continue;
    }
    CODE_LEXEME.lastIndex = 0;
    let match: RegExpExecArray | null;
    while ((match = CODE_LEXEME.exec(token.text)) !== null && match[0] !== '') {
      const [text, number, word, cast, punctuation] = match;
      if (number !== undefined) lexemes.push({ kind: 'other', text });
      else if (word !== undefined) lexemes.push({ kind: 'name', text, folded: word.toLowerCase() });
      else if (cast !== undefined) lexemes.push({ kind: 'cast', text });
      else if (punctuation !== undefined) lexemes.push({ kind: punctuation === '.' ? 'dot' : punctuation === '(' ? 'open' : 'close', text });
      else if (text.trim() !== '') lexemes.push({ kind: 'other', text });
    }
  }
  return lexemes;
}
