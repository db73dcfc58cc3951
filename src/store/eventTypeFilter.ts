/**
 * "This event is one the projection handles", in SQL, for every statement that reads a
 * projection's events (its batches, the replay's counts, the status lag). A projection's
 * handler keys are exact types (`account.credited`), prefixes (`account.*`) or `*` (see
 * `projection/handlerFor.ts`). Exact types stay an `= any(…)` test and prefixes become LIKE
 * patterns, so a projection without patterns is filtered exactly as before. Either way it is a
 * filter on the rows of the delivery-order index scan: no index on `type` is involved.
 */
export interface EventTypeFilter {
  /** Types matched as they are. */
  exact: string[];
  /** LIKE patterns: `account.%` for `account.*`, `%` for `*`. */
  prefixes: string[];
}

/**
 * `(column = any(exact) or column like any(prefixes))`: `exact` and `prefixes` are the SQL of
 * the two `text[]` values of an `EventTypeFilter`.
 */
export function eventTypeMatchesSql(column: string, exact: string, prefixes: string): string {
  return `(${column} = any(${exact}) or ${column} like any(${prefixes}))`;
}

/** A projection's handler keys as the two arrays `eventTypeMatchesSql` tests against. */
export function eventTypeFilter(keys: readonly string[]): EventTypeFilter {
  if (keys.includes('*')) return { exact: [], prefixes: ['%'] };
  const filter: EventTypeFilter = { exact: [], prefixes: [] };
  for (const key of keys) {
    if (key.endsWith('.*')) filter.prefixes.push(`${escapeLike(key.slice(0, -1))}%`);
    else filter.exact.push(key);
  }
  return filter;
}

/** Backslash is LIKE's default escape character. */
function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, '\\$&');
}
