-- Which events a projection reads, recorded with its checkpoint: {"types": [...]}, its handler
-- keys sorted. A projection whose handlers change without a version bump would otherwise leave
-- the events of an added type behind its checkpoint unapplied, silently. A daemon refuses to
-- start on such a change; a version rebuild or `projd replay` records the new selection.
-- Null until recorded: checkpoints written before this migration get it on the next start.
-- jsonb, so that later parts of a selection (a partition count, …) go next to "types".
alter table projd.checkpoints add column selection jsonb;
