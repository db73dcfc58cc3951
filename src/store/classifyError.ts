import { errorMessage } from '../errors.js';
import type { Failure } from './failedEvents.js';

/**
 * Which failures are worth retrying as they are, in two kinds. Transient: the database refused
 * the event's transaction for now (a serialization or lock conflict, a timeout); the retry will
 * likely succeed, but the condition can also keep recurring on one event. Outage: the connection
 * or the server failed, which says nothing about the event being applied. Anything else is
 * deterministic: the handler threw, or PostgreSQL refused the data, and running the same event
 * again will fail the same way.
 */
const TRANSIENT_SQLSTATES = new Map<string, string>([
  ['40001', 'serialization_failure'],
  ['40P01', 'deadlock_detected'],
  ['55P03', 'lock_not_available'],
  ['57014', 'query_canceled'], // the batch timeout cancels the batch's statement
  ['25P03', 'idle_in_transaction_session_timeout'], // the batch timeout's server-side guard
]);

const OUTAGE_SQLSTATES = new Map<string, string>([
  ['08000', 'connection_exception'],
  ['08001', 'sqlclient_unable_to_establish_sqlconnection'],
  ['08003', 'connection_does_not_exist'],
  ['08004', 'sqlserver_rejected_establishment_of_sqlconnection'],
  ['08006', 'connection_failure'],
  ['08007', 'transaction_resolution_unknown'],
  ['08P01', 'protocol_violation'],
  ['40003', 'statement_completion_unknown'],
  ['53000', 'insufficient_resources'],
  ['53100', 'disk_full'],
  ['53200', 'out_of_memory'],
  ['53300', 'too_many_connections'],
  ['53400', 'configuration_limit_exceeded'],
  ['57P01', 'admin_shutdown'],
  ['57P02', 'crash_shutdown'],
  ['57P03', 'cannot_connect_now'],
  ['57P05', 'idle_session_timeout'],
  ['58000', 'system_error'],
  ['58030', 'io_error'],
]);

/** Socket-level failures, from Node or pg, that carry no SQLSTATE. */
const OUTAGE_NODE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** pg reports a lost connection with these messages and no code. */
const OUTAGE_MESSAGES = [
  /^Connection terminated/,
  /^Client has encountered a connection error and is not queryable/,
  /^timeout exceeded when trying to connect/,
  /^Client was closed and is not queryable/,
];

/** `transient` and `outage` are both retried; only `transient` can count against an event. */
export type ErrorKind = 'transient' | 'outage' | 'deterministic';

export function classifyError(error: unknown): ErrorKind {
  // A handler may wrap the database's error; follow `cause` a few levels down.
  for (let current = error, depth = 0; current !== undefined && current !== null && depth < 5; depth += 1) {
    if (isOutage(current)) return 'outage';
    if (isTransient(current)) return 'transient';
    current = (current as { cause?: unknown }).cause;
  }
  return 'deterministic';
}

function isTransient(error: unknown): boolean {
  if (typeof error !== 'object') return false;
  const { code } = error as { code?: unknown };
  return typeof code === 'string' && TRANSIENT_SQLSTATES.has(code);
}

function isOutage(error: unknown): boolean {
  if (typeof error !== 'object') return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && (OUTAGE_SQLSTATES.has(code) || OUTAGE_NODE_CODES.has(code))) return true;
  // A connection whose prepared statements went stale: a fresh connection cures it.
  if (isStalePlan(error)) return true;
  if (error instanceof AggregateError) return error.errors.some(isOutage);
  return typeof message === 'string' && OUTAGE_MESSAGES.some((pattern) => pattern.test(message));
}

/** The SQLSTATE of a database error, if it is one (five characters, digits and capitals). */
export function sqlstateOf(error: unknown): string | null {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : null;
}

/** What is recorded of a deterministic failure: who refused the event, and why. */
export function describeFailure(error: unknown): Failure {
  const code = sqlstateOf(error);
  return { errorClass: code === null ? 'handler' : 'database', message: errorMessage(error), code };
}

/**
 * A prepared statement whose result columns changed under it (a replay's `reset` and `setup`
 * recreated a table): feature_not_supported with this message. The connection keeps failing
 * with it, so it is discarded and the batch retried on a fresh one.
 */
export function isStalePlan(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return code === '0A000' && typeof message === 'string' && message.includes('cached plan must not change result type');
}
