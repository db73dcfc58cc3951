-- An events table of the application's own, adopted with `projd migrate --adopt`: projd.events
-- is then a view over it, renaming its columns to projd's, and this one row says which table it
-- is and how its columns map. No row while projd.events is projd's own table.
create table projd.adopted_table (
  singleton boolean primary key default true constraint adopted_table_singleton check (singleton),
  source text not null,   -- the table, quoted as regclass prints it
  config jsonb not null,  -- the config's events section as adopted: run refuses another one
  columns jsonb not null, -- each of projd's fields → the table's column; absent: not in the table
  adopted_at timestamptz not null default now()
);

-- On the view: the application owns the table and appends through its own event store, whose
-- checks projd cannot stand in for. PJ001 lets appendEvents tell this apart.
create function projd.events_refuse_append() returns trigger
language plpgsql as $$
begin
  raise exception 'projd: this event store is adopted from %: append through the application that owns it',
    (select a.source from projd.adopted_table a)
    using errcode = 'PJ001';
end
$$;
