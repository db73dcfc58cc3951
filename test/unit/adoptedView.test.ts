import { describe, expect, it } from 'vitest';
import { adoptedViewSql, resolveColumnMapping, type TableColumn } from '../../src/store/adoptedView.js';
import { assertAdoptionMatches, lostGuarantees } from '../../src/store/adoption.js';

const ORDERS: TableColumn[] = [
  { name: 'id', type: 'bigint' },
  { name: 'stream_id', type: 'uuid' },
  { name: 'event_type', type: 'character varying' },
  { name: 'payload', type: 'json' },
  { name: 'schema_version', type: 'text' },
  { name: 'projd_era', type: 'integer' },
  { name: 'projd_transaction_id', type: 'xid8' },
];

describe('resolveColumnMapping', () => {
  it("takes the named columns, and projd's own names where the table has them", () => {
    const mapping = resolveColumnMapping({ columns: { position: 'id', type: 'event_type', data: 'payload' } }, 'orders', ORDERS);
    expect(mapping).toEqual({ position: 'id', streamId: 'stream_id', type: 'event_type', data: 'payload', schemaVersion: 'schema_version' });
  });

  it('refuses a column of a type the field cannot take, naming the key', () => {
    expect(() =>
      resolveColumnMapping({ columns: { position: 'event_type', type: 'event_type', data: 'payload' } }, 'orders', ORDERS),
    ).toThrow("events.columns.position: column 'event_type' of orders is character varying; it must be bigint or integer");
  });
});

describe('adoptedViewSql', () => {
  const sql = adoptedViewSql({
    source: 'orders',
    mapping: { position: 'id', streamId: 'stream_id', type: 'event_type', data: 'payload', schemaVersion: 'schema_version' },
    columns: ORDERS,
    where: "event_type <> 'snapshot'",
  });

  it('reads the delivery order from plain columns, so the row comparison reaches the index', () => {
    expect(sql).toContain('t."id" as position,');
    expect(sql).toContain('t."projd_era" as era,');
    expect(sql).toContain('t."projd_transaction_id" as transaction_id,');
  });

  it('casts the other columns to the types of projd.events, and puts stand-ins for the missing ones', () => {
    expect(sql).toContain('t."stream_id"::text as stream_id,');
    expect(sql).toContain('0 as stream_version,');
    expect(sql).toContain('t."event_type"::text as type,');
    expect(sql).toContain('t."payload"::jsonb as data,');
    expect(sql).toContain(`'{}'::jsonb as metadata,`);
    expect(sql).toContain(`case when t."schema_version" ~ '^[0-9]{1,9}$' then t."schema_version"::integer else 1 end as schema_version,`);
    expect(sql).toContain('now() as created_at');
    expect(sql).toMatch(/from orders t\n\s+where \(event_type <> 'snapshot'\)$/);
  });
});

describe('an adopted store', () => {
  const adoption = {
    source: 'emt_messages',
    config: { table: 'emt_messages', columns: { position: 'global_position' } },
    mapping: { position: 'global_position', streamId: 'stream_id', transactionId: 'transaction_id', createdAt: 'created' },
  };

  it('warns once per guarantee it gives up', () => {
    expect(lostGuarantees(adoption).map((lost) => lost.guarantee)).toEqual(['stream_order', 'restore_check', 'transaction_stamp']);
  });

  it('runs only with the events section it was adopted with', () => {
    expect(() => assertAdoptionMatches({ table: 'emt_messages', columns: { position: 'global_position' } }, adoption)).not.toThrow();
    expect(() => assertAdoptionMatches({ table: 'emt_messages', columns: { position: 'global_position', createdAt: 'created' } }, adoption)).toThrow(
      'the events section differs from the one emt_messages was adopted with: run projd migrate --adopt to adopt it anew',
    );
    expect(() => assertAdoptionMatches({ columns: {} }, adoption)).toThrow(/^the store reads the adopted table emt_messages, but events.table is not set/);
    expect(() => assertAdoptionMatches({ columns: {} }, null)).not.toThrow();
  });
});
