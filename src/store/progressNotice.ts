import { PROGRESS_CHANNEL } from './names.js';
import type { Part } from './part.js';
import type { Position } from './position.js';
import type { Queryable } from './queryable.js';

/**
 * What a batch says on `projd_progress` as it commits: this part of this projection now has
 * its checkpoint at `checkpoint`. Enough for a waiter to compare with its event's place
 * without a query.
 */
export interface ProgressNotice {
  projection: string;
  /** The part (0 when not split) and how many parts the projection has. */
  part: number;
  parts: number;
  checkpoint: Position;
}

interface ProgressPayload {
  projection: string;
  part: number;
  parts: number;
  era: number;
  transactionId: string;
  position: string;
}

const notifyProgressSql = /* sql */ `select pg_notify($1, $2)`;

/**
 * Queues the notice in the caller's transaction: PostgreSQL delivers it at commit, and never
 * for a transaction that rolls back. Send it in the pipeline before the `commit`.
 */
export function notifyProgress(db: Queryable, projection: string, part: Part, checkpoint: Position): Promise<unknown> {
  const payload: ProgressPayload = {
    projection,
    part: part.index,
    parts: part.count,
    era: checkpoint.era,
    transactionId: checkpoint.transactionId.toString(),
    position: checkpoint.position.toString(),
  };
  return db.query(notifyProgressSql, [PROGRESS_CHANNEL, JSON.stringify(payload)]);
}

/**
 * `pg_notify` of a notice built in SQL from a checkpoint row aliased `row`, for a statement
 * that moves the checkpoint itself (`update … returning`): the same payload as `notifyProgress`.
 */
export function notifyProgressFromRowSql(row: string): string {
  return /* sql */ `pg_notify('${PROGRESS_CHANNEL}', json_build_object(
    'projection', ${row}.projection, 'part', ${row}.part, 'parts', ${row}.parts, 'era', ${row}.era,
    'transactionId', ${row}.transaction_id::text, 'position', ${row}.position::text)::text)`;
}

const DIGITS = /^\d+$/;

/** A notice from its payload; null for anything else, since anyone may NOTIFY the channel. */
export function parseProgressNotice(payload: string): ProgressNotice | null {
  let value: Partial<ProgressPayload>;
  try {
    value = JSON.parse(payload) as Partial<ProgressPayload>;
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const { projection, part, parts, era, transactionId, position } = value;
  if (typeof projection !== 'string' || !Number.isInteger(part) || !Number.isInteger(parts) || !Number.isInteger(era)) return null;
  if (typeof transactionId !== 'string' || !DIGITS.test(transactionId)) return null;
  if (typeof position !== 'string' || !DIGITS.test(position)) return null;
  return {
    projection,
    part: part!,
    parts: parts!,
    checkpoint: { era: era!, transactionId: BigInt(transactionId), position: BigInt(position) },
  };
}
