import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { ProjectionDb } from '../projection/types.js';

/**
 * Distinct handler statements prepared at most, per process: SQL built with literals instead of
 * parameters would otherwise prepare a new statement on the server for every event.
 */
const MAX_PREPARED_STATEMENTS = 500;
const statementNames = new Map<string, string>();

/**
 * The name a statement run again and again is prepared under, from its text: a handler runs
 * the same few statements for every event, a SQL batch handler the same for every batch, and
 * a prepared statement skips parsing and planning them each time (1.6× the upserts per second
 * on a 2-core machine). pg prepares it once per connection. Undefined past the cap: the
 * statement then runs unnamed.
 */
export function statementName(text: string): string | undefined {
  let name = statementNames.get(text);
  if (name === undefined && statementNames.size < MAX_PREPARED_STATEMENTS) {
    name = `projd_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
    statementNames.set(text, name);
  }
  return name;
}

export interface HandlerDbOptions {
  /** Prepare parameterised statements (off behind a pooler that cannot keep them). */
  prepare: boolean;
  /** Checked before each statement: a handler abandoned by a timeout must not reach the connection. */
  assertUsable?: () => void;
  /** Checked with each statement's text before it is sent: a scratch build refuses one that names a schema. */
  assertStatement?: (text: string) => void;
}

/** The first statement that failed, in the order statements were sent, and whose event sent it. */
export interface StatementFailure {
  index: number;
  error: unknown;
}

/**
 * The batch's statements as handlers send them. Every statement is tracked with the index of
 * the event whose handler sent it, whether the handler awaits it or not: on a pipelined
 * connection a handler may queue its statements and return, and the batch learns of their
 * failures here, with the answer to the commit it sent behind them.
 */
export interface HandlerDb {
  /** What handlers are given: statements only, no release, no end. */
  readonly db: ProjectionDb;
  /** Statements sent from now on belong to the `index`-th event of the batch. */
  startEvent(index: number): void;
  /** Statements sent and not answered yet. */
  readonly inFlight: number;
  /** The event of the oldest statement not answered yet: the one the server is working on. */
  readonly pendingIndex: number | undefined;
  /** Known so far; final once `settle()` resolves. */
  readonly firstFailure: StatementFailure | undefined;
  /** Was `error` the failure of a statement sent through this db? */
  sent(error: unknown): boolean;
  /** Resolves (never rejects) once at most `inFlight` statements are unanswered. */
  drain(inFlight?: number): Promise<void>;
  /** Resolves (never rejects) once every statement is answered, with the first failure. */
  settle(): Promise<StatementFailure | undefined>;
  /**
   * The first failure known once the statements refused before reaching the server (a value pg
   * cannot send, a check of projd's) have failed: pg reports those a tick later. A statement
   * the server never saw cannot abort the transaction, so a commit sent behind the others
   * would land without it: none may be sent while this finds one.
   */
  refused(): Promise<StatementFailure | undefined>;
}

interface Pending {
  index: number;
  answered: Promise<void>;
}

/** The transaction as a handler sees it, tracking what it sends. */
export function createHandlerDb(client: pg.ClientBase, { prepare, assertUsable, assertStatement }: HandlerDbOptions): HandlerDb {
  let eventIndex = 0;
  let sentCount = 0;
  // Keyed by send order; a Map keeps insertion order, so its first entry is the oldest.
  const pending = new Map<number, Pending>();
  let first: (StatementFailure & { order: number }) | undefined;
  const failures = new WeakSet<object>();

  function track(order: number, index: number, result: Promise<unknown>): void {
    // Attached to the very promise the handler gets: one it ignores never rejects unhandled.
    const answered = result.then(
      () => {
        pending.delete(order);
      },
      (error: unknown) => {
        pending.delete(order);
        if (typeof error === 'object' && error !== null) failures.add(error);
        if (first === undefined || order < first.order) first = { order, index, error };
      },
    );
    pending.set(order, { index, answered });
  }

  const db: ProjectionDb = {
    query<Row>(text: string, values?: readonly unknown[]) {
      const order = sentCount++;
      const result = send<Row>(text, values);
      track(order, eventIndex, result);
      return result;
    },
  };

  async function send<Row>(text: string, values?: readonly unknown[]) {
    assertUsable?.();
    assertStatement?.(text);
    const name = prepare && values !== undefined && values.length > 0 ? statementName(text) : undefined;
    const result =
      name === undefined
        ? await client.query(text, values as unknown[] | undefined)
        : await client.query({ name, text, values: values as unknown[] });
    return { rows: result.rows as Row[], rowCount: result.rowCount };
  }

  async function drain(inFlight = 0): Promise<void> {
    while (pending.size > inFlight) await pending.values().next().value!.answered;
  }

  return {
    db,
    startEvent(index) {
      eventIndex = index;
    },
    get inFlight() {
      return pending.size;
    },
    get pendingIndex() {
      return pending.values().next().value?.index;
    },
    get firstFailure() {
      return first && { index: first.index, error: first.error };
    },
    sent: (error) => typeof error === 'object' && error !== null && failures.has(error),
    drain,
    async settle() {
      await drain(0);
      return first && { index: first.index, error: first.error };
    },
    async refused() {
      // Past the ticks and promise jobs in which pg and `send` reject a statement they did not send.
      await new Promise((resolve) => setImmediate(resolve));
      return first && { index: first.index, error: first.error };
    },
  };
}
