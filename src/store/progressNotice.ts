import { PROGRESS_CHANNEL } from './names.js';
import type { Position } from './position.js';
import { inOrder, type Queryable } from './queryable.js';

/**
 * What a daemon says on `projd_progress` once a batch has committed: this part of this
 * projection now has its checkpoint at `checkpoint`. Enough for a waiter to compare with its
 * event's place without a query.
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

/** The notice's text on `projd_progress`. */
export function progressPayload({ projection, part, parts, checkpoint }: ProgressNotice): string {
  const payload: ProgressPayload = {
    projection,
    part,
    parts,
    era: checkpoint.era,
    transactionId: checkpoint.transactionId.toString(),
    position: checkpoint.position.toString(),
  };
  return JSON.stringify(payload);
}

const sendProgressNoticesSql = /* sql */ `select pg_notify($1, payload) from unnest($2::text[]) payload`;

/**
 * Sends notices of checkpoints already committed, in a transaction of their own that does not
 * wait for the disk (a lost notice only makes a waiter look again at its next notice or its
 * timeout). Not in the batch's own transaction: PostgreSQL serializes the commits of every
 * transaction that notifies, each holding a database-wide lock until its commit is flushed,
 * so a batch that notified would queue behind every writer's flush, holding its locks and the
 * read model back from its readers meanwhile.
 */
export async function sendProgressNotices(db: Queryable, notices: readonly ProgressNotice[]): Promise<void> {
  await inOrder(
    db.query('begin; set local synchronous_commit = off'),
    db.query(sendProgressNoticesSql, [PROGRESS_CHANNEL, notices.map(progressPayload)]),
    db.query('commit'),
  ).catch(async (error: unknown) => {
    await db.query('rollback').catch(() => undefined);
    throw error;
  });
}

/**
 * `pg_notify` of a notice built in SQL from a checkpoint row aliased `row`, for a statement
 * that moves the checkpoint itself (`update … returning`): the same payload as `progressPayload`.
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
