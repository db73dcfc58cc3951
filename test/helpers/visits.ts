import { defineProjection } from '../../src/projection/defineProjection.js';
import type { ProjdEvent, ProjectionDb } from '../../src/projection/types.js';

/** A value pg cannot send: it refuses the statement before it reaches the server. */
function unsendable(): unknown {
  const loop: Record<string, unknown> = {};
  loop.self = loop;
  return loop;
}

/** Whether a handler honours an event's `refuse: true` (see `queueVisit`). */
export interface Refusing {
  refusing?: boolean;
}

/**
 * Queues, without awaiting, the insert of a `page.visited` event's position into `table`; with
 * `refusing`, for an event whose data asks (`refuse: true`), also an update that pg refuses to send.
 */
function queueVisit(table: string, event: ProjdEvent, db: ProjectionDb, { refusing = false }: Refusing): void {
  db.query(`insert into ${table} (position) values ($1)`, [event.position]);
  if (refusing && (event.data as { refuse?: boolean }).refuse) {
    db.query(`update ${table} set note = $2 where position = $1`, [event.position, unsendable()]);
  }
}

/** Per-event handler queueing its statements into a table named after the projection (`queueVisit`). */
export function queuedVisits(name: string, refusing: Refusing = {}) {
  return defineProjection({
    name,
    version: 1,
    setup: `create table if not exists ${name} (position bigint primary key, note jsonb)`,
    handlers: { 'page.visited': (event, db) => queueVisit(name, event, db, refusing) },
  });
}

/** `handleBatch` queueing each event's statements into a table named after the projection (`queueVisit`). */
export function queuedBatchVisits(name: string, refusing: Refusing = {}) {
  return defineProjection({
    name,
    version: 1,
    setup: `create table if not exists ${name} (position bigint primary key, note jsonb)`,
    eventTypes: ['page.visited'],
    handleBatch: (events, db) => {
      for (const event of events) queueVisit(name, event, db, refusing);
    },
  });
}

/** A SQL batch handler counting `page.visited` per stream into a table named after the projection. */
export function visitCounts(name: string) {
  return defineProjection({
    name,
    version: 1,
    setup: `create table if not exists ${name} (stream_id text primary key, visits integer not null)`,
    eventTypes: ['page.visited'],
    batch: `insert into ${name} (stream_id, visits)
            select stream_id, count(*) from projd.batch_events() group by stream_id
            on conflict (stream_id) do update set visits = ${name}.visits + excluded.visits`,
  });
}
