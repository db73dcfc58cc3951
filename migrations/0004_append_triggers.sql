-- The append triggers again: a constant cost per statement and row, however many rows the
-- writing transaction has written before, and a gap in a stream told apart from a race.
--
-- Both trigger functions plan without sequential scans: PL/pgSQL caches a generic plan for
-- each query after a few runs, and one made while the table was empty or tiny (a new store,
-- a store autovacuum saw empty) scans the table, so every lookup would walk every row written
-- since, the writer's own included. With the setting off, the index is the plan at any size.

-- The era check looks for a committed transaction id at or above the snapshot's xmax (the
-- latest completed one + 1), which no healthy cluster holds. The writer's own id is usually
-- there too, so the probe goes around it in two index ranges instead of walking every row
-- the writer has appended. Each probe is ordered by the index and takes one row, so that the
-- cached generic plan, which cannot estimate the bounds, still probes the index rather than
-- scanning the table. It runs once per transaction: a transaction-local setting holds the id
-- of the transaction that passed, and resets at commit or rollback.
create or replace function projd.events_check_era() returns trigger
language plpgsql
set enable_seqscan = off
as $$
declare
  own xid8 := pg_current_xact_id();
begin
  if current_setting('projd.era_checked_by', true) = own::text then
    return null;
  end if;
  -- The horizon is read inside each probe, from the snapshot that probe sees rows with: read
  -- in a statement of its own, a transaction that commits in between would look restored.
  perform from projd.events e
   where e.era = projd.current_era()
     and e.transaction_id >= pg_snapshot_xmax(pg_current_snapshot()) and e.transaction_id < own
   order by e.era, e.transaction_id limit 1;
  if not found then
    perform from projd.events e
     where e.era = projd.current_era()
       and e.transaction_id >= pg_snapshot_xmax(pg_current_snapshot()) and e.transaction_id > own
     order by e.era, e.transaction_id limit 1;
  end if;
  if found then
    raise exception 'projd: this event store was restored into another cluster; run `projd migrate --new-era` before appending'
      using errcode = '55000';
  end if;
  perform set_config('projd.era_checked_by', own::text, true);
  return null;
end
$$;

-- Whether another transaction holds (stream_id, version): committed after this statement's
-- snapshot was taken, or still in progress. A plain select cannot see the latter, but the
-- unique index can: a placeholder insert of that key waits for the transaction holding it
-- and fails with a unique violation once it commits, or goes through when it rolls back or
-- the key never existed. The placeholder is always rolled back with the block's subtransaction.
create function projd.events_version_taken(stream text, version integer) returns boolean
language plpgsql as $$
begin
  perform set_config('projd.placeholder_for', format('%s/%s', stream, version), true);
  insert into projd.events (stream_id, stream_version, type, data)
  values (stream, version, 'projd.placeholder', '{}');
  raise exception 'placeholder inserted' using errcode = 'PJ000';
exception
  when unique_violation then
    return true;
  when sqlstate 'PJ000' then
    return false;
end
$$;

-- Stamps the era and the writing transaction (a client cannot pick its place in the order),
-- and keeps each stream's versions in delivery order. A previous version that belongs to a
-- later transaction, or that another transaction holds but this one cannot see yet, is a
-- race: 40001 tells the writer to retry, with a new transaction id that sorts after it. A
-- previous version that does not exist at all is a gap, which no retry fixes: 23514.
create or replace function projd.events_before_insert() returns trigger
language plpgsql
set enable_seqscan = off
as $$
declare
  previous record;
begin
  new.era := projd.current_era();
  new.transaction_id := pg_current_xact_id();
  if new.stream_version = 1 then
    return new;
  end if;
  select e.era, e.transaction_id into previous
    from projd.events e
   where e.stream_id = new.stream_id and e.stream_version = new.stream_version - 1;
  if found and (previous.era, previous.transaction_id) <= (new.era, new.transaction_id) then
    return new;
  end if;
  -- events_version_taken's own placeholder row needs no check: it is rolled back.
  if current_setting('projd.placeholder_for', true) = format('%s/%s', new.stream_id, new.stream_version) then
    return new;
  end if;
  if found then
    raise exception 'projd: stream % version % was written by a later transaction; retry the append',
      new.stream_id, new.stream_version - 1
      using errcode = '40001';
  end if;
  if projd.events_version_taken(new.stream_id, new.stream_version - 1) then
    raise exception 'projd: stream % version % was written by a transaction this one cannot see yet; retry the append',
      new.stream_id, new.stream_version - 1
      using errcode = '40001';
  end if;
  raise exception 'projd: stream % has no version %, so version % cannot be appended',
    new.stream_id, new.stream_version - 1, new.stream_version
    using errcode = '23514',
          schema = 'projd', table = 'events', constraint = 'events_stream_version_contiguous',
          hint = 'Stream versions go 1, 2, 3, … without gaps: append the missing version first.';
end
$$;
