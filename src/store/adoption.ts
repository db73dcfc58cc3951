import { isDeepStrictEqual } from 'node:util';
import { UserError } from '../errors.js';
import type { ColumnMapping, EventsTableConfig } from './adoptedView.js';
import { SCHEMA } from './names.js';
import type { Queryable } from './queryable.js';

/** What `projd migrate --adopt` recorded: the table projd.events reads, and how. */
export interface Adoption {
  source: string;
  /** The config's `events` section it was adopted with. */
  config: EventsTableConfig;
  mapping: ColumnMapping;
}

const readAdoptionSql = /* sql */ `select source, config, columns from ${SCHEMA}.adopted_table`;

/** The store's adoption, or null while projd.events is projd's own table. */
export async function readAdoption(db: Queryable): Promise<Adoption | null> {
  const { rows } = await db.query<{ source: string; config: EventsTableConfig; columns: ColumnMapping }>(readAdoptionSql);
  const row = rows[0];
  return row ? { source: row.source, config: row.config, mapping: row.columns } : null;
}

/** The config's `events` section as JSON stores it: keys left unset are absent. */
function asStored(config: EventsTableConfig): unknown {
  return JSON.parse(JSON.stringify(config));
}

/**
 * Refuses to run on a store that reads another table than the config says, or reads it
 * another way: the view is what `--adopt` made, and only `--adopt` changes it.
 */
export function assertAdoptionMatches(config: EventsTableConfig, adoption: Adoption | null): void {
  if (config.table === undefined && adoption === null) return;
  if (adoption === null) {
    throw new UserError(`events.table is ${config.table}, but the store has not adopted it: run projd migrate --adopt first`);
  }
  if (config.table === undefined) {
    throw new UserError(
      `the store reads the adopted table ${adoption.source}, but events.table is not set: set the events section it was adopted with`,
    );
  }
  if (!isDeepStrictEqual(asStored(config), asStored(adoption.config))) {
    throw new UserError(
      `the events section differs from the one ${adoption.source} was adopted with: run projd migrate --adopt to adopt it anew`,
    );
  }
}

/** One of projd's guarantees that an adopted store does not give, for a warning at start. */
export interface LostGuarantee {
  guarantee: string;
  message: string;
}

/**
 * The guarantees an adopted table loses, each once. projd's own table stamps the era and the
 * transaction, refuses an append behind its stream's previous version, and refuses appends
 * after a restore into another cluster; the application's table does none of that.
 */
export function lostGuarantees({ source, mapping }: Adoption): LostGuarantee[] {
  const lost: LostGuarantee[] = [
    {
      guarantee: 'stream_order',
      message:
        mapping.streamVersion === undefined
          ? `${source} has no stream version (events.columns.streamVersion): events arrive in commit order, and the order within a stream under concurrent appends is not checked; handlers see streamVersion 0`
          : `${source} does not refuse an append behind its stream's previous version: events of one stream arrive in stream_version order only if the application appends each stream's events in order`,
    },
    {
      guarantee: 'restore_check',
      message: `appends to ${source} are not refused after a restore into another cluster: projd run refuses to start there until projd migrate --new-era, and events appended before it may be skipped`,
    },
  ];
  if (mapping.transactionId !== undefined) {
    lost.push({
      guarantee: 'transaction_stamp',
      message: `${source}.${mapping.transactionId} is written by the application: an event whose transaction id is not pg_current_xact_id() of its writer may be skipped or delivered out of order`,
    });
  }
  if (mapping.streamId === undefined) {
    lost.push({
      guarantee: 'stream_id',
      message: `${source} has no stream id (events.columns.streamId): every event has streamId '', and partitions put every event in one part`,
    });
  }
  if (mapping.createdAt === undefined) {
    lost.push({
      guarantee: 'lag_seconds',
      message: `${source} has no creation time (events.columns.createdAt): lag in seconds reads 0`,
    });
  }
  return lost;
}
