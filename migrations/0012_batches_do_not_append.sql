-- projd's own batches may not append events. The snapshot gate looks past the transactions of
-- the sessions that run batches (application_name `projd daemon …`, `projd replay …` or
-- `projd verify …`), so that one projection's batch does not hold back the events every
-- other projection reads until it commits. That is safe only if such a transaction can never
-- commit an event: an event it wrote would sort below gates that readers have already passed,
-- and be skipped. One check per appending statement, on any table that holds the store's events.
create function projd.refuse_batch_append() returns trigger
language plpgsql as $$
begin
  if current_setting('application_name') like any ('{projd daemon %,projd replay %,projd verify %}'::text[]) then
    raise exception 'projd: a projection cannot append events from its handlers, setup or batch SQL'
      using errcode = '55000',
            hint = 'projd reads past the transactions of its own batches; append from the application instead.';
  end if;
  return null;
end
$$;

create trigger events_refuse_batch_append
  before insert on projd.events
  for each statement execute function projd.refuse_batch_append();
