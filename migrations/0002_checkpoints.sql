-- One row per projection: how far it has applied, and for which version of its code.
-- Written in the same transaction as the read model, so the two never disagree.
create table projd.checkpoints (
  projection text primary key,
  version integer not null,
  era integer not null default 0,
  transaction_id xid8 not null default '0',
  position bigint not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
