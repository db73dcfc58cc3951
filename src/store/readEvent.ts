import type { ProjdEvent } from '../event.js';
import { EVENT_COLUMNS, toEvent } from './eventRow.js';
import { EVENTS_TABLE } from './names.js';
import type { Position } from './position.js';
import type { Queryable } from './queryable.js';

const readEventSql = /* sql */ `select ${EVENT_COLUMNS} from ${EVENTS_TABLE} e where e.position = $1::bigint`;

/** One event by its global position, with its place in the delivery order; null if absent. */
export async function readEvent(db: Queryable, position: bigint): Promise<{ event: ProjdEvent; at: Position } | null> {
  const { rows } = await db.query<unknown[]>({ text: readEventSql, values: [position.toString()], rowMode: 'array' as const });
  return rows[0] ? toEvent(rows[0]) : null;
}
