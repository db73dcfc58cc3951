import pg from 'pg';
import type { Projection } from '../projection/types.js';
import {
  buildKey,
  buildSchemaName,
  freshBuildSchemaSql,
  moveBuiltObjects,
  oldTablesSchemaName,
  outsideDependents,
  type SwapMoves,
} from '../store/buildSchema.js';
import { selectCheckpoint, storeCheckpoint, type Checkpoint } from '../store/checkpoints.js';
import { lockProjection } from '../store/locks.js';
import { CHECKPOINTS_TABLE, FAILED_EVENTS_TABLE } from '../store/names.js';
import { partsOfProjection, type Part } from '../store/part.js';
import type { Position } from '../store/position.js';
import { searchPathSql } from '../store/scratchSchema.js';
import { applyBatch, pickForm } from './apply/pickForm.js';
import { inCancellableTransaction } from './cancellableTransaction.js';
import type { Deadline } from './deadline.js';
import { createHandlerDb } from './handlerDb.js';

/**
 * The projection as its blue/green build runs it: checkpoint, locks and parked events under
 * the build's key, and a `setup` that first gives it an empty schema of its own. A build
 * started over (a second version bump) gets a fresh schema the same way, so it needs no `reset`.
 */
export function buildProjectionOf(projection: Projection): Projection {
  return {
    ...projection,
    name: buildKey(projection.name),
    setup: [...freshBuildSchemaSql(buildSchemaName(projection.name)), ...projection.setup],
    reset: [],
  };
}

export interface SwapOptions {
  pool: pg.Pool;
  /** The projection at the version built. */
  projection: Projection;
  batchSize: number;
  /** Bounds each statement of the swap, and the swap as a whole. */
  timeoutMs: number;
  /** Keep the tables the swap replaced, in a schema of their own, rather than drop them. */
  keepOldTables: boolean;
  /** Checks each handler statement before it is sent (see `createStatementCheck`). */
  assertStatement?: (text: string) => void;
}

/** What a swap did. */
export type SwapResult =
  | {
      kind: 'swapped';
      /** The version that served until now; null when nothing did. */
      fromVersion: number | null;
      /** Where the live projection now stands, per part. */
      checkpoints: Position[];
      /** Events the build applied inside the swap, to be level with the old version. */
      caughtUp: number;
      moves: SwapMoves;
      /** The schema the replaced tables went to, and whether it was kept. */
      oldTables: { schema: string; kept: boolean; dependents: string[] };
    }
  /** The live projection already runs this version: another daemon swapped it in. */
  | { kind: 'already_swapped' }
  /** The build is not this version's (a newer daemon started its own), or is halted on a failed event. */
  | { kind: 'not_ready'; reason: string };

/**
 * Puts a blue/green build in the place of the live projection, in one transaction: the
 * projection's lock (the old version's batches finish first and wait after), the build's, then
 * the build applies what was committed since it caught up, so it stands at least where the old
 * version stood; its objects move into the live schema in place of the same-named ones, its
 * checkpoint and parked events become the projection's. Readers of the live tables see the old
 * version or the new one, never neither. The replaced tables are dropped, unless kept or
 * something outside depends on them.
 */
export async function swapBuild(options: SwapOptions): Promise<SwapResult> {
  return inCancellableTransaction(options.pool, { timeoutMs: options.timeoutMs }, async (client, deadline) => {
    const { rows } = await client.query<{ schema: string | null }>('select current_schema() as schema');
    const liveSchema = rows[0]!.schema;
    if (liveSchema === null) throw new Error('no schema on the search_path to swap the build into');
    const result = await swapInTransaction(client, options, liveSchema, deadline);
    return { result, commit: result.kind === 'swapped' };
  });
}

async function swapInTransaction(
  client: pg.PoolClient,
  options: SwapOptions,
  liveSchema: string,
  deadline: Deadline,
): Promise<SwapResult> {
  const { projection } = options;
  const build = buildProjectionOf(projection);
  const parts = partsOfProjection(projection);
  await lockProjection(client, projection.name);
  await lockProjection(client, build.name);

  const live = await selectCheckpoint(client, projection.name, 0);
  if (live && live.version === projection.version && live.parts === parts.length) return { kind: 'already_swapped' };
  if (live && live.version > projection.version) {
    return { kind: 'not_ready', reason: `the store holds version ${live.version}, newer than ${projection.version}` };
  }
  const built: Checkpoint[] = [];
  for (const part of parts) {
    const checkpoint = await selectCheckpoint(client, build.name, part.index);
    const notReady = notReadyReason(checkpoint, projection, parts.length);
    if (notReady) return { kind: 'not_ready', reason: notReady };
    built.push(checkpoint!);
  }

  // The build is level with what the old version applied: both read to the gate, this one later.
  const schema = buildSchemaName(projection.name);
  await client.query(searchPathSql(schema));
  let caughtUp = 0;
  const checkpoints: Position[] = [];
  for (const part of parts) {
    const caught = await catchUp(client, options, build, part, built[part.index]!, deadline);
    if (!caught) return { kind: 'not_ready', reason: `part ${part.index} of the build is still catching up` };
    caughtUp += caught.applied;
    checkpoints.push(caught.to);
  }
  await client.query('set local search_path to default');

  await client.query(`delete from ${FAILED_EVENTS_TABLE} where projection = $1`, [projection.name]);
  await client.query(`update ${FAILED_EVENTS_TABLE} set projection = $1 where projection = $2`, [projection.name, build.name]);
  await client.query(`delete from ${CHECKPOINTS_TABLE} where projection = $1`, [projection.name]);
  await client.query(`update ${CHECKPOINTS_TABLE} set projection = $1, updated_at = now() where projection = $2`, [
    projection.name,
    build.name,
  ]);

  const old = oldTablesSchemaName(projection.name, live?.version ?? 0);
  const moves = await moveBuiltObjects(client, { build: schema, live: liveSchema, old });
  // Empty now, unless it holds something projd does not move: then the swap fails, saying what.
  await client.query(`drop schema ${pg.escapeIdentifier(schema)}`);
  const dependents = options.keepOldTables ? [] : await outsideDependents(client, old);
  const kept = options.keepOldTables || dependents.length > 0;
  if (!kept) await client.query(`drop schema ${pg.escapeIdentifier(old)} cascade`);
  return {
    kind: 'swapped',
    fromVersion: live?.version ?? null,
    checkpoints,
    caughtUp,
    moves,
    oldTables: { schema: old, kept, dependents },
  };
}

function notReadyReason(checkpoint: Checkpoint | null, projection: Projection, parts: number): string | null {
  if (!checkpoint) return 'the build has not started';
  if (checkpoint.version !== projection.version) return `the build is of version ${checkpoint.version}`;
  if (checkpoint.parts !== parts) return `the build has ${checkpoint.parts} parts`;
  if (checkpoint.blockedBy !== null) return `the build is halted on failed event ${checkpoint.blockedBy}`;
  return null;
}

/**
 * Full batches the swap applies to a part at most: a build that is further behind (a part
 * another daemon builds, a burst of writes) is not swapped yet, so that the swap holds the
 * projection's lock, and the old version's batches with it, for a few batches at most.
 */
const SWAP_CATCH_UP_BATCHES = 4;

/**
 * Applies a build part's events up to the gate, inside the swap's transaction, and moves its
 * checkpoint; null when that takes more than {@link SWAP_CATCH_UP_BATCHES} batches.
 */
async function catchUp(
  client: pg.PoolClient,
  { batchSize, assertStatement }: SwapOptions,
  build: Projection,
  part: Part,
  from: Position,
  deadline: Deadline,
): Promise<{ applied: number; to: Position } | null> {
  const form = pickForm(build);
  let at = from;
  let applied = 0;
  for (let batches = 1; ; batches += 1) {
    if (batches > SWAP_CATCH_UP_BATCHES) return null;
    const handlerDb = createHandlerDb(client, {
      prepare: false,
      assertStatement,
      assertUsable: () => {
        if (deadline.expired) throw new Error('the swap has timed out; this query was not sent');
      },
    });
    const batch = await applyBatch(form, { client, projection: build, part, after: at, limit: batchSize, prepared: false, handlerDb, deadline });
    applied += batch.applied;
    if (batch.scannedTo) at = batch.scannedTo;
    if (!batch.full || !batch.scannedTo) break;
  }
  if (at !== from && !(await storeCheckpoint(client, build.name, from, at, part.index))) {
    throw new Error(`the build's checkpoint of part ${part.index} moved during the swap`);
  }
  return { applied, to: at };
}
