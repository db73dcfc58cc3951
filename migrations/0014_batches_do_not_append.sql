-- projd's own batches may not append events. The snapshot gate looks past the transactions of
-- the sessions that run batches (application_name `projd daemon …`, `projd replay …` or
-- `projd verify …`), so that one projection's batch does not hold back the events every
-- other projection reads until it commits. That is safe only if such a transaction can never commit an event: an
-- event it wrote would sort below gates that readers have already passed, and be skipped.
-- So the era check, which runs first for every appending statement, refuses them too.
-- The rest of the function is as migration 0004 left it.
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
  if current_setting('application_name') like any ('{projd daemon %,projd replay %,projd verify %}'::text[]) then
    raise exception 'projd: a projection cannot append events from its handlers, setup or batch SQL'
      using errcode = '55000',
            hint = 'projd reads past the transactions of its own batches; append from the application instead.';
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
