import type { EventHandler, Projection } from './types.js';

/**
 * A handler key is an exact event type (`account.credited`), a prefix pattern ending in `.*`
 * (`account.*`: every type that starts with `account.`) or `*` alone (every event). The store
 * turns the same keys into its SQL filter (`store/eventTypeFilter.ts`); this module is the one
 * place that decides which handler an event goes to.
 */
export const ALL_TYPES = '*';
const PREFIX_SUFFIX = '.*';

/** Null when `key` is a valid handler key; otherwise what is wrong with it, for a message. */
export function eventTypeKeyProblem(key: string): string | null {
  if (!key.includes('*') || key === ALL_TYPES) return null;
  const prefix = key.slice(0, -PREFIX_SUFFIX.length);
  if (key.endsWith(PREFIX_SUFFIX) && prefix !== '' && !prefix.includes('*')) return null;
  return `event type pattern '${key}' is not valid: '*' stands alone ('*', every event) or ends a prefix ('account.*')`;
}

// Prefix keys by handler map, longest first, worked out once per projection.
const prefixCache = new WeakMap<ReadonlyMap<string, EventHandler>, ReadonlyArray<readonly [string, EventHandler]>>();

/**
 * The handler that takes an event of `type`: the one of its exact type, else the one of the
 * longest prefix pattern that matches it, else the `'*'` handler; undefined when none does.
 */
export function handlerFor(projection: Pick<Projection, 'handlers'>, type: string): EventHandler | undefined {
  const { handlers } = projection;
  const exact = handlers.get(type);
  if (exact !== undefined) return exact;
  let prefixes = prefixCache.get(handlers);
  if (prefixes === undefined) {
    prefixes = [...handlers]
      .filter(([key]) => key !== ALL_TYPES && key.endsWith(PREFIX_SUFFIX))
      .map(([key, handler]) => [key.slice(0, -1), handler] as const)
      .sort(([a], [b]) => b.length - a.length);
    prefixCache.set(handlers, prefixes);
  }
  for (const [prefix, handler] of prefixes) if (type.startsWith(prefix)) return handler;
  return handlers.get(ALL_TYPES);
}

/** Whether a projection reading `eventTypes` (exact types, `prefix.*`, `*`) reads events of `type`. */
export function readsEventType(eventTypes: readonly string[], type: string): boolean {
  return eventTypes.some(
    (key) => key === ALL_TYPES || key === type || (key.endsWith(PREFIX_SUFFIX) && type.startsWith(key.slice(0, -1))),
  );
}
