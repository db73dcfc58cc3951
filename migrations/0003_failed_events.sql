-- Events a projection could not apply, parked so that the others behind them go on.
-- Written in the same transaction as the batch that moves the checkpoint past the event.
create table projd.failed_events (
  id bigint generated always as identity primary key,
  projection text not null,
  position bigint not null,
  transaction_id xid8 not null,
  stream_id text not null,
  type text not null,
  error_class text not null,          -- 'handler' (thrown by the handler) or 'database' (refused by PostgreSQL)
  error_message text not null,
  error_code text,                    -- SQLSTATE, when PostgreSQL refused it
  attempts integer not null default 1,
  status text not null default 'parked'
    constraint failed_events_status check (status in ('parked', 'retried', 'skipped')),
  first_failed_at timestamptz not null default now(),
  last_failed_at timestamptz not null default now(),
  resolved_at timestamptz,
  constraint failed_events_projection_event_key unique (projection, position)
);

create index failed_events_parked_idx on projd.failed_events (projection) where status = 'parked';

-- A projection whose policy is onError: stop halts right before its failing event: blocked_by
-- names that event until `projd failed retry` applies it or `projd failed skip` passes it.
alter table projd.checkpoints
  add column blocked_by bigint references projd.failed_events (id),
  add column last_error text,
  add column last_error_at timestamptz;
