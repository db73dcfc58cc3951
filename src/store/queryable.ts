import type pg from 'pg';

/** A pool or a client: anything the store's functions can send a statement to. */
export type Queryable = Pick<pg.ClientBase, 'query'>;
