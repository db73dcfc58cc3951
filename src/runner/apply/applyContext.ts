import type pg from 'pg';
import type { Projection } from '../../projection/types.js';
import type { Part } from '../../store/part.js';
import type { Position } from '../../store/position.js';
import type { Deadline } from '../deadline.js';
import type { HandlerDb } from '../handlerDb.js';
import type { Prefetch } from '../prefetch.js';
import type { EarlyRead } from './earlyRead.js';

/** What a form needs to apply the next batch inside the batch's transaction. */
export interface ApplyContext {
  client: pg.ClientBase;
  projection: Projection;
  /** The part of the projection this batch reads (the whole projection when it is not split). */
  part: Part;
  /** The checkpoint, read under the lock: the batch starts after it. */
  after: Position;
  /** Inclusive: the batch reads no further (a scratch build's end). @defaultValue no bound but the gate */
  through?: Position;
  /** Most events of the projection's types in the batch. */
  limit: number;
  /** Run projd's own reads as prepared statements (`database.preparedStatements`). */
  prepared: boolean;
  /** The transaction as handlers see it (`handlerDb.db`), which tracks the statements they send. */
  handlerDb: HandlerDb;
  deadline: Deadline;
  /** The form's read of this batch, already sent with the batch's opening, for `after`. */
  early?: EarlyRead;
  /** Reads the next batch while this one applies, where the form gains from it. */
  prefetch?: { prefetch: Prefetch; pool: pg.Pool; timeoutMs: number };
}

/** What a form applied, and where the checkpoint may move (as `readBatch` says). */
export interface Applied {
  applied: number;
  /** Null when nothing new is below the gate: the checkpoint stays. */
  scannedTo: Position | null;
  full: boolean;
  heldBack: boolean;
  /**
   * The form's statements may still be in flight, none refused before reaching the server: the
   * checkpoint's move and the commit go out behind them, in the same round trip, and this
   * resolves once they are all answered, or rejects with the form's failure (the commit then
   * rolled back, the transaction being aborted). Absent: every statement was answered.
   */
  answered?: () => Promise<void>;
}
