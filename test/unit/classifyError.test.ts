import { describe, expect, it } from 'vitest';
import { classifyError, sqlstateOf } from '../../src/store/classifyError.js';

function pgError(code: string, message = 'from the server'): Error {
  return Object.assign(new Error(message), { code });
}

describe('classifyError', () => {
  it.each([
    ['40001', 'serialization_failure'],
    ['40P01', 'deadlock_detected'],
    ['55P03', 'lock_not_available'],
    ['57014', 'query_canceled (the batch timeout)'],
    ['25P03', 'idle_in_transaction_session_timeout'],
  ])('retries SQLSTATE %s (%s), and can count it against the event', (code) => {
    expect(classifyError(pgError(code))).toBe('transient');
  });

  it.each([
    ['08006', 'connection_failure'],
    ['40003', 'statement_completion_unknown'],
    ['53300', 'too_many_connections'],
    ['57P01', 'admin_shutdown'],
    ['57P03', 'cannot_connect_now'],
  ])('retries SQLSTATE %s (%s) as an outage, never the event\'s fault', (code) => {
    expect(classifyError(pgError(code))).toBe('outage');
  });

  it.each([
    ['22012', 'division_by_zero'],
    ['23505', 'unique_violation'],
    ['23514', 'check_violation'],
    ['42601', 'syntax_error'],
    ['42P01', 'undefined_table'],
    ['P0001', 'raise_exception'],
  ])('isolates SQLSTATE %s (%s)', (code) => {
    expect(classifyError(pgError(code))).toBe('deterministic');
  });

  it('retries socket errors and the connection losses pg reports without a code, as outages', () => {
    expect(classifyError(pgError('ECONNRESET'))).toBe('outage');
    expect(classifyError(new Error('Connection terminated unexpectedly'))).toBe('outage');
    expect(classifyError(new AggregateError([pgError('ECONNREFUSED')]))).toBe('outage');
  });

  it('isolates what a handler throws, and follows `cause` to a transient error it wraps', () => {
    expect(classifyError(new TypeError("Cannot read properties of undefined (reading 'amount')"))).toBe('deterministic');
    expect(classifyError('a string')).toBe('deterministic');
    expect(classifyError(new Error('could not update', { cause: pgError('40P01') }))).toBe('transient');
    expect(classifyError(new Error('could not update', { cause: pgError('57P01') }))).toBe('outage');
  });
});

describe('sqlstateOf', () => {
  it('reads a SQLSTATE, and nothing else', () => {
    expect(sqlstateOf(pgError('22012'))).toBe('22012');
    expect(sqlstateOf(pgError('ECONNRESET'))).toBeNull();
    expect(sqlstateOf(new Error('plain'))).toBeNull();
    expect(sqlstateOf(null)).toBeNull();
  });
});
