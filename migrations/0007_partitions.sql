-- Partitioned projections (`partitions: N`): one checkpoint row per part. A projection of N
-- parts has the rows of parts 0 to N-1, each recording N, all of one version and selection,
-- written together by set-up and rebuild. Rows written before are part 0 of 1, which is how
-- a projection without `partitions` goes on. Each part's row moves, blocks and records its
-- errors on its own.
alter table projd.checkpoints
  add column part integer not null default 0,
  add column parts integer not null default 1,
  add constraint checkpoints_part_in_range check (parts between 1 and 256 and part >= 0 and part < parts);

alter table projd.checkpoints drop constraint checkpoints_pkey;
alter table projd.checkpoints add constraint checkpoints_pkey primary key (projection, part);
