import type pg from 'pg';
import { splitSqlStatements } from '../../projection/sqlLexer.js';
import { inOrder } from '../../store/queryable.js';
import { readBatchBounds } from '../../store/readBatchBounds.js';
import { BatchFailure } from '../batchErrors.js';
import { statementName } from '../handlerDb.js';
import type { Applied, ApplyContext } from './applyContext.js';

/** Whether each batch SQL text holds one statement: only one can be prepared. */
const singleStatement = new Map<string, boolean>();

/**
 * The batch SQL as sent: prepared when it is one statement and prepared statements are on.
 * Planning a statement over `projd.batch_events()` can cost the server more than running it
 * on a small batch.
 */
function batchStatement(sql: string, prepared: boolean): string | pg.QueryConfig {
  if (!prepared) return sql;
  let single = singleStatement.get(sql);
  if (single === undefined) {
    single = splitSqlStatements(sql).length === 1;
    singleStatement.set(sql, single);
  }
  const name = single ? statementName(sql) : undefined;
  return name === undefined ? sql : { name, text: sql };
}

/**
 * Reads only where the batch ends, which points `projd.batch_events()` at it in the same
 * statement, and sends the projection's `batch` SQL, which reads the events in place: none
 * crosses the wire.
 */
export async function applySqlBatch(context: ApplyContext): Promise<Applied> {
  const { client, projection, part, after, through, limit, prepared, deadline, early } = context;
  const bounds = await (early?.form === 'sqlBatch'
    ? early.bounds
    : readBatchBounds(client, { after, through, eventTypes: projection.eventTypes, limit, part, prepared }));
  const { count, scannedTo, full, heldBack } = bounds;
  if (count > 0 && scannedTo !== null) {
    // The scan's end bounds the relation when the batch is not full: past the last event of
    // the projection's types up to there, there are only events of other types.
    const range = { count, firstPosition: bounds.firstPosition!, lastPosition: bounds.lastPosition! };
    // Sent in pipeline, unanswered: they run in order, and the checkpoint's move and the commit
    // follow them in the same round trip. They carry no values, so pg cannot refuse one before
    // it reaches the server (see `HandlerDb.refused`).
    const sent = projection.batch!.map((sql) => client.query(batchStatement(sql, prepared)));
    const answers = inOrder(...sent);
    answers.catch(() => undefined); // awaited by `answered`, once the commit is sent behind them
    const answered = () =>
      deadline.race(answers).then(
        () => undefined,
        (error: unknown) => {
          throw new BatchFailure('sqlBatch', range, error);
        },
      );
    return { applied: count, scannedTo, full, heldBack, answered };
  }
  return { applied: count, scannedTo, full, heldBack };
}
