-- A projection's batch marks its transaction (`set local application_name = 'projd batch …'`),
-- and every reader's snapshot gate passes over marked transactions: before, each batch that
-- wrote its read model held back every other projection, and a replay or a blue/green build
-- the live ones, until it committed. That is sound only while a batch appends no events, so
-- an append from a marked transaction is refused here, on projd's table and on an adopted one
-- alike (both have this statement trigger). The wake-up is unchanged.
create or replace function projd.events_notify() returns trigger
language plpgsql as $$
begin
  if current_setting('application_name') like 'projd batch %' then
    raise exception 'projd: a projection''s batch cannot append events (readers do not wait for a batch''s transaction, so its events could be skipped)'
      using errcode = 'PJ002',
            hint = 'Append from the application, or from a handler''s own connection outside the batch.';
  end if;
  perform pg_notify('projd_events', '');
  return null;
end
$$;
