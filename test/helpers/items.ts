import type pg from 'pg';

/**
 * Projection sources for failure tests. `item.added` events carry `data.poison`:
 * `'throw'` makes the handler throw, `'database'` makes PostgreSQL refuse it (division by
 * zero, SQLSTATE 22012). Every application is counted in `<name>_applied`, so tests can
 * prove exactly-once effects.
 */
export function itemsProjectionSource({
  name,
  poisoned,
  onError,
  maxAttempts,
  extraSql = '',
}: {
  name: string;
  poisoned: boolean;
  onError?: 'park' | 'stop';
  maxAttempts?: number;
  /** SQL run by the handler before it records the event (e.g. a call that fails transiently). */
  extraSql?: string;
}): string {
  const policy = [
    onError === undefined ? '' : `onError: '${onError}',`,
    maxAttempts === undefined ? '' : `maxAttempts: ${maxAttempts},`,
  ].join(' ');
  const poison = poisoned
    ? `if (event.data.poison === 'throw') throw new Error('poison event ' + event.streamId);
       if (event.data.poison === 'database') await db.query('select 1 / 0');`
    : '';
  const extra = extraSql ? `await db.query(${JSON.stringify(extraSql)});` : '';
  return `import { defineProjection } from 'projd';
export default defineProjection({
  name: '${name}',
  version: 1,
  ${policy}
  setup: 'create table if not exists ${name}_applied (position bigint primary key, times integer not null default 1)',
  reset: 'truncate ${name}_applied',
  handlers: {
    'item.added': async (event, db) => {
      ${poison}
      ${extra}
      await db.query(
        'insert into ${name}_applied (position) values ($1) on conflict (position) do update set times = ${name}_applied.times + 1',
        [event.position],
      );
    },
  },
});
`;
}

/** Appends `count` item.added events over 50 streams; `poison` maps an event's index to its poison. */
export async function appendItems(
  pool: pg.Pool,
  count: number,
  poison: Record<number, 'throw' | 'database'> = {},
): Promise<void> {
  const poisonJson = JSON.stringify(Object.fromEntries(Object.entries(poison)));
  await pool.query(
    `with next as (select i, 'item-' || (i % 50) as stream_id from generate_series(0, $1::int - 1) i)
     insert into projd.events (stream_id, stream_version, type, data)
     select n.stream_id,
            coalesce((select max(stream_version) from projd.events e where e.stream_id = n.stream_id), 0)
              + row_number() over (partition by n.stream_id order by n.i),
            'item.added',
            jsonb_strip_nulls(jsonb_build_object('n', n.i, 'poison', $2::jsonb ->> n.i::text))
       from next n
      order by n.i`,
    [count, poisonJson],
  );
}

/** Distinct events applied, and the most times any one was applied. */
export async function appliedStats(pool: pg.Pool, name: string): Promise<{ count: number; maxTimes: number }> {
  try {
    const { rows } = await pool.query<{ count: string; max_times: number | null }>(
      `select count(*) as count, max(times) as max_times from ${name}_applied`,
    );
    return { count: Number(rows[0]!.count), maxTimes: rows[0]!.max_times ?? 0 };
  } catch (error) {
    if ((error as { code?: string }).code === '42P01') return { count: 0, maxTimes: 0 }; // setup has not run yet
    throw error;
  }
}

/** Positions of the events with the given `data.n`. */
export async function positionsOf(pool: pg.Pool, ns: readonly number[]): Promise<string[]> {
  const { rows } = await pool.query<{ position: string }>(
    `select position::text from projd.events where (data->>'n')::int = any($1::int[]) order by position`,
    [ns],
  );
  return rows.map((row) => row.position);
}
