-- projd's schema as the shipped migrations leave it, read from the catalogs.
-- Checked by test/integration/store.schema.test.ts; regenerate with `npm run schema:update`.

-- migrations: 0001_events, 0002_checkpoints, 0003_failed_events, 0004_append_triggers, 0005_checkpoint_selection, 0006_stream_part, 0007_partitions, 0008_batch_events, 0009_schema_versions, 0010_adopted_table, 0011_batch_events_settings_once, 0012_batches_append_no_events, 0013_wake_on_demand

create sequence projd.events_position_seq as bigint increment 1 minvalue 1 maxvalue 9223372036854775807 start 1 cache 1;

create sequence projd.failed_events_id_seq as bigint increment 1 minvalue 1 maxvalue 9223372036854775807 start 1 cache 1;

create sequence projd.wake_armed as bigint increment 1 minvalue 0 maxvalue 9223372036854775807 start 0 cache 1;

create sequence projd.wake_fired as bigint increment 1 minvalue 0 maxvalue 9223372036854775807 start 0 cache 1;

create sequence projd.wake_fired_at as bigint increment 1 minvalue 0 maxvalue 9223372036854775807 start 0 cache 1;

create sequence projd.wake_firer as bigint increment 1 minvalue 0 maxvalue 9223372036854775807 start 0 cache 1;

create table projd.adopted_table (
  singleton boolean default true not null,
  source text not null,
  config jsonb not null,
  columns jsonb not null,
  adopted_at timestamp with time zone default now() not null
);

create table projd.checkpoints (
  projection text not null,
  version integer not null,
  era integer default 0 not null,
  transaction_id xid8 default '0'::xid8 not null,
  "position" bigint default 0 not null,
  created_at timestamp with time zone default now() not null,
  updated_at timestamp with time zone default now() not null,
  blocked_by bigint,
  last_error text,
  last_error_at timestamp with time zone,
  selection jsonb,
  part integer default 0 not null,
  parts integer default 1 not null
);

create table projd.events (
  "position" bigint generated always as identity not null,
  era integer default projd.current_era() not null,
  transaction_id xid8 default pg_current_xact_id() not null,
  stream_id text not null,
  stream_version integer not null,
  type text not null,
  data jsonb not null,
  metadata jsonb default '{}'::jsonb not null,
  schema_version integer default 1 not null,
  created_at timestamp with time zone default now() not null
);

create table projd.failed_events (
  id bigint generated always as identity not null,
  projection text not null,
  "position" bigint not null,
  transaction_id xid8 not null,
  stream_id text not null,
  type text not null,
  error_class text not null,
  error_message text not null,
  error_code text,
  attempts integer default 1 not null,
  status text default 'parked'::text not null,
  first_failed_at timestamp with time zone default now() not null,
  last_failed_at timestamp with time zone default now() not null,
  resolved_at timestamp with time zone
);

create table projd.migrations (
  id text not null,
  applied_at timestamp with time zone default now() not null
);

alter table projd.adopted_table add constraint adopted_table_pkey PRIMARY KEY (singleton);

alter table projd.adopted_table add constraint adopted_table_singleton CHECK (singleton);

alter table projd.checkpoints add constraint checkpoints_blocked_by_fkey FOREIGN KEY (blocked_by) REFERENCES projd.failed_events(id);

alter table projd.checkpoints add constraint checkpoints_part_in_range CHECK ((((parts >= 1) AND (parts <= 256)) AND (part >= 0) AND (part < parts)));

alter table projd.checkpoints add constraint checkpoints_pkey PRIMARY KEY (projection, part);

alter table projd.events add constraint events_pkey PRIMARY KEY ("position");

alter table projd.events add constraint events_stream_version_key UNIQUE (stream_id, stream_version);

alter table projd.events add constraint events_stream_version_positive CHECK ((stream_version > 0));

alter table projd.failed_events add constraint failed_events_pkey PRIMARY KEY (id);

alter table projd.failed_events add constraint failed_events_projection_event_key UNIQUE (projection, "position");

alter table projd.failed_events add constraint failed_events_status CHECK ((status = ANY (ARRAY['parked'::text, 'retried'::text, 'skipped'::text])));

alter table projd.migrations add constraint migrations_pkey PRIMARY KEY (id);

CREATE INDEX events_delivery_order_idx ON projd.events USING btree (era, transaction_id, "position");

CREATE INDEX failed_events_parked_idx ON projd.failed_events USING btree (projection) WHERE (status = 'parked'::text);

CREATE OR REPLACE FUNCTION projd.arm_wakeup()
 RETURNS boolean
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  perform nextval('projd.wake_armed');
  -- Taken only when no writer holds it shared, and given back at once: never waited for, so a
  -- daemon never holds writers back behind a long transaction.
  if pg_try_advisory_lock(237395994369227796) then
    perform pg_advisory_unlock(237395994369227796);
    return true;
  end if;
  return false;
end
$function$;

CREATE OR REPLACE FUNCTION projd.batch_events()
 RETURNS SETOF projd.events
 LANGUAGE sql
 STABLE
AS $function$
    select e.*
      from projd.events e
     where (e.era, e.transaction_id, e.position) > (
             select split_part(b, '/', 1)::integer, split_part(b, '/', 2)::xid8, split_part(b, '/', 3)::bigint
               from (select nullif(current_setting('projd.batch_after', true), '') as b) setting)
       and (e.era, e.transaction_id, e.position) <= (
             select split_part(b, '/', 1)::integer, split_part(b, '/', 2)::xid8, split_part(b, '/', 3)::bigint
               from (select nullif(current_setting('projd.batch_through', true), '') as b) setting)
       -- coalesce() keeps each subquery a scalar: `any ((select …))` would compare with its rows.
       and (e.type = any (coalesce((select nullif(current_setting('projd.batch_types', true), '')::text[]), '{}'))
            or e.type like any (coalesce((select nullif(current_setting('projd.batch_prefixes', true), '')::text[]), '{}')))
       and (coalesce((select nullif(current_setting('projd.batch_parts', true), '')::integer), 1) = 1
            or projd.stream_part(e.stream_id, coalesce((select nullif(current_setting('projd.batch_parts', true), '')::integer), 1))
               = coalesce((select nullif(current_setting('projd.batch_part', true), '')::integer), 0))
     order by e.era, e.transaction_id, e.position
  $function$;

CREATE OR REPLACE FUNCTION projd.current_era()
 RETURNS integer
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$ select 0 $function$;

CREATE OR REPLACE FUNCTION projd.events_before_insert()
 RETURNS trigger
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION projd.events_check_era()
 RETURNS trigger
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION projd.events_notify()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  armed bigint;
begin
  -- As in migration 0012: readers' snapshot gates pass over batches, so a batch appends nothing.
  if current_setting('application_name') like 'projd batch %' then
    raise exception 'projd: a projection''s batch cannot append events (readers do not wait for a batch''s transaction, so its events could be skipped)'
      using errcode = 'PJ002',
            hint = 'Append from the application, or from a handler''s own connection outside the batch.';
  end if;
  -- First the lock, then the look: a daemon arming after this look finds the lock held.
  perform pg_advisory_xact_lock_shared(237395994369227796);
  armed := (select last_value from projd.wake_armed);
  if armed > (select last_value from projd.wake_fired) or projd.wake_owed() then
    perform setval('projd.wake_fired', armed);
    perform setval('projd.wake_firer', pg_current_xact_id()::text::bigint);
    perform setval('projd.wake_fired_at', floor(extract(epoch from clock_timestamp()) * 1000)::bigint);
    perform pg_notify('projd_events', '');
  end if;
  return null;
end
$function$;

CREATE OR REPLACE FUNCTION projd.events_refuse_append()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
begin
  raise exception 'projd: this event store is adopted from %: append through the application that owns it',
    (select a.source from projd.adopted_table a)
    using errcode = 'PJ001';
end
$function$;

CREATE OR REPLACE FUNCTION projd.events_version_taken(stream text, version integer)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION projd.schema_version_unknown(projection text, type text, version integer, lowest integer, current integer)
 RETURNS jsonb
 LANGUAGE plpgsql
AS $function$
  begin
    raise exception 'projection ''%'': ''%'' event has schema version %; it knows versions % to %',
      projection, type, version, lowest, current
      using errcode = 'data_exception';
  end
  $function$;

CREATE OR REPLACE FUNCTION projd.stream_part(stream_id text, parts integer)
 RETURNS integer
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT
AS $function$ select (('x' || left(md5(stream_id), 8))::bit(32)::bigint % parts)::integer $function$;

CREATE OR REPLACE FUNCTION projd.wake_firer_status(OUT firer bigint, OUT status text)
 RETURNS record
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  firer := (select last_value from projd.wake_firer);
  if firer = 0 then
    status := 'none';
  elsif firer::text::xid8 < pg_snapshot_xmax(pg_current_snapshot()) then
    status := pg_xact_status(firer::text::xid8);
  else
    begin
      status := pg_xact_status(firer::text::xid8);
    exception when invalid_parameter_value then
      status := 'none';
    end;
  end if;
end
$function$;

CREATE OR REPLACE FUNCTION projd.wake_owed()
 RETURNS boolean
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select case
           when s.firer = 0 then false
           when s.status = 'none' then true
           when s.firer = coalesce(pg_current_xact_id_if_assigned()::text::bigint, 0) then false
           when s.status = 'committed' then false
           when s.status = 'in progress' then floor(extract(epoch from clock_timestamp()) * 1000) - t.fired_at > 50
           else true -- aborted, or so old its status is gone
         end
    from projd.wake_firer_status() s,
         (select last_value as fired_at from projd.wake_fired_at) t
$function$;

CREATE TRIGGER events_before_insert BEFORE INSERT ON projd.events FOR EACH ROW EXECUTE FUNCTION projd.events_before_insert();

CREATE TRIGGER events_check_era BEFORE INSERT ON projd.events FOR EACH STATEMENT EXECUTE FUNCTION projd.events_check_era();

CREATE TRIGGER events_notify AFTER INSERT ON projd.events FOR EACH STATEMENT EXECUTE FUNCTION projd.events_notify();
