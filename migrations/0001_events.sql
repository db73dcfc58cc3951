-- The event store. Delivery order is (era, transaction_id, position): a reader only takes
-- events of transactions below its snapshot's xmin, so an event that commits late is never
-- skipped.

-- The era: transaction ids only order events written by one cluster. A store restored into
-- another cluster (pg_dump, logical migration) restarts them below the stored ones, so
-- `projd migrate --new-era` bumps the era and everything stored sorts before anything new.
-- Immutable so that it folds to a constant; redefining it invalidates the plans that used it.
create function projd.current_era() returns integer
language sql immutable parallel safe as $$ select 0 $$;

create table projd.events (
  position bigint generated always as identity primary key,
  era integer not null default projd.current_era(),
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

create index events_delivery_order_idx on projd.events (era, transaction_id, position);

-- Stamps the era and the writing transaction (a client cannot pick its place in the order),
-- and refuses an append that would be delivered before the stream's previous version: that
-- happens when the previous version belongs to a later transaction, or has not committed
-- yet. 40001 tells the writer to retry, with a new transaction id that sorts after it.
create function projd.events_before_insert() returns trigger
language plpgsql as $$
declare
  previous record;
begin
  new.era := projd.current_era();
  new.transaction_id := pg_current_xact_id();
  if new.stream_version > 1 then
    select e.era, e.transaction_id into previous
      from projd.events e
     where e.stream_id = new.stream_id and e.stream_version = new.stream_version - 1;
    if not found then
      raise exception 'projd: stream % version % is not committed, so version % cannot be appended yet',
        new.stream_id, new.stream_version - 1, new.stream_version
        using errcode = '40001';
    end if;
    if (previous.era, previous.transaction_id) > (new.era, new.transaction_id) then
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

-- Refuses appends to a store restored into another cluster until its era is bumped: their
-- transaction ids would sort before the restored ones, behind every checkpoint. No healthy
-- cluster holds a committed transaction id at or above its snapshot's xmax (the latest
-- completed one + 1); only the writer's own rows can be there. One index probe per statement.
create function projd.events_check_era() returns trigger
language plpgsql as $$
begin
  if exists (
    select 1 from projd.events e
     where e.era = projd.current_era()
       and e.transaction_id >= pg_snapshot_xmax(pg_current_snapshot())
       and e.transaction_id is distinct from pg_current_xact_id_if_assigned()
  ) then
    raise exception 'projd: this event store was restored into another cluster; run `projd migrate --new-era` before appending'
      using errcode = '55000';
  end if;
  return null;
end
$$;

create trigger events_check_era
  before insert on projd.events
  for each statement execute function projd.events_check_era();

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
