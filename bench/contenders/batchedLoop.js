// What a careful team writes by hand: read the next batch in position order after its own
// checkpoint, apply each event with the projection's upsert, move the checkpoint, commit.
// One transaction per batch. Position order is only safe here because nothing writes to the
// store while it runs; projd reads through a snapshot gate instead, so late commits are not skipped.

import { connect } from '../database.js';
import { applyEvent, createTableSql, dropTable, statementsFor } from '../readModel.js';

export const readBatchSql = /* sql */ `
  select e.position::text as position, e.stream_id, e.type, e.data
    from projd.events e
   where e.position > $1
   order by e.position
   limit $2`;

const storeCheckpointSql = /* sql */ `update bench_checkpoints set position = $2 where name = $1`;

/** Where the loop `name` resumes: its checkpoint row, as a text position. */
export async function readCheckpoint(client, name) {
  const { rows: [checkpoint] } = await client.query('select position::text as position from bench_checkpoints where name = $1', [name]);
  return checkpoint.position;
}

/** Moves the loop's checkpoint, in the caller's transaction. */
export async function storeCheckpoint(client, name, position) {
  await client.query(storeCheckpointSql, [name, position]);
}

/** A fresh read model and a checkpoint at 0 for a hand-written loop named `name`. */
export async function resetLoop(admin, { name, table }) {
  await dropTable(admin, table);
  await admin.query(createTableSql(table));
  await admin.query('create table if not exists bench_checkpoints (name text primary key, position bigint not null)');
  await admin.query(
    'insert into bench_checkpoints (name, position) values ($1, 0) on conflict (name) do update set position = 0',
    [name],
  );
}

/**
 * The batched loop, with or without a savepoint around each event: the savepoint is what
 * per-event failure isolation costs on the happy path (on a failure the loop would roll back
 * to it and park the event instead of losing the batch).
 */
export async function runBatchedLoop({ url, admin, table, batchSize, name, savepoints }) {
  await resetLoop(admin, { name, table });
  const statements = statementsFor(table);
  const client = await connect(url);
  try {
    const started = performance.now();
    let position = await readCheckpoint(client, name);
    for (;;) {
      await client.query('begin');
      const { rows: events } = await client.query(readBatchSql, [position, batchSize]);
      for (const event of events) {
        if (savepoints) await client.query('savepoint event');
        await applyEvent(client, statements, event);
        if (savepoints) await client.query('release savepoint event');
      }
      if (events.length > 0) {
        position = events.at(-1).position;
        await storeCheckpoint(client, name, position);
      }
      await client.query('commit');
      if (events.length < batchSize) break;
    }
    return { seconds: (performance.now() - started) / 1000 };
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  } finally {
    await client.end().catch(() => {});
  }
}

export default {
  key: 'batchedLoop',
  label: 'hand-written batched loop',
  table: 'bench_balances_batched',
  run: (context) => runBatchedLoop({ ...context, name: 'batched', savepoints: false }),
};
