-- The event store. Delivery order is (transaction_id, position): a reader only takes events
-- of transactions below its snapshot's xmin, so an event that commits late is never skipped.
create table projd.events (
  position bigint generated always as identity primary key,
  transaction_id xid8 not null default pg_current_xact_id(),
  stream_id text not null,
  stream_version integer not null,
  type text not null,
  data jsonb not null,
  metadata jsonb not null default '{}',
  schema_version integer not null default 1,
  created_at timestamptz not null default now(),
  constraint events_stream_version_key unique (stream_id, stream_version),
  constraint events_stream_version_positive check (stream_version > 0)
);

create index events_delivery_order_idx on projd.events (transaction_id, position);

-- Stamps the writing transaction (a client cannot pick its place in the order) and refuses
-- an append that would be delivered before the stream's previous version: that happens when
-- the previous version belongs to a later transaction, or has not committed yet. 40001 tells
-- the writer to retry, with a new transaction id that sorts after the previous version's.
create function projd.events_before_insert() returns trigger
language plpgsql as $$
declare
  previous_transaction_id xid8;
begin
  new.transaction_id := pg_current_xact_id();
  if new.stream_version > 1 then
    select e.transaction_id into previous_transaction_id
      from projd.events e
     where e.stream_id = new.stream_id and e.stream_version = new.stream_version - 1;
    if previous_transaction_id is null then
      raise exception 'projd: stream % version % is not committed, so version % cannot be appended yet',
        new.stream_id, new.stream_version - 1, new.stream_version
        using errcode = '40001';
    end if;
    if previous_transaction_id > new.transaction_id then
      raise exception 'projd: stream % version % was written by a later transaction; retry the append',
        new.stream_id, new.stream_version - 1
        using errcode = '40001';
    end if;
  end if;
  return new;
end
$$;

create trigger events_before_insert
  before insert on projd.events
  for each row execute function projd.events_before_insert();

-- One wake-up per statement, not per row. The payload is always empty: it is only a hint,
-- and readers always go through the snapshot gate.
create function projd.events_notify() returns trigger
language plpgsql as $$
begin
  perform pg_notify('projd_events', '');
  return null;
end
$$;

create trigger events_notify
  after insert on projd.events
  for each statement execute function projd.events_notify();
