import type pg from 'pg';

/**
 * Round trips on a pool's pipelined connections, counted as the client sees them: a statement
 * sent while none of its connection's is awaiting an answer starts one; a statement sent while
 * one is rides along. `onStatement` sees each statement's text and whether it rode along.
 * A `pool.query` with a callback (pg-pool's own) is passed through, uncounted.
 */
export function countRoundTrips(
  pool: pg.Pool,
  onStatement?: (text: string, rodeAlong: boolean) => void,
): { readonly count: number; reset(): void } {
  let count = 0;
  pool.on('connect', (client) => {
    let pending = 0;
    const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
    (client as unknown as { query: (...args: unknown[]) => Promise<unknown> }).query = (...args) => {
      if (typeof args.at(-1) === 'function') return query(...args);
      const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text: string }).text;
      onStatement?.(text, pending > 0);
      if (pending === 0) count += 1;
      pending += 1;
      const answered = query(...args);
      void answered.then(
        () => (pending -= 1),
        () => (pending -= 1),
      );
      return answered;
    };
  });
  return {
    get count() {
      return count;
    },
    reset() {
      count = 0;
    },
  };
}
