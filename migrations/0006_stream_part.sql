-- The part of a partitioned projection (`partitions: N`) that a stream belongs to: the first
-- 32 bits of the md5 of its id, modulo the number of parts. md5 rather than hashtext, which is
-- internal to PostgreSQL and may change between versions: that would move streams between
-- parts under their checkpoints. Immutable, so that plans and indexes may use it.
create function projd.stream_part(stream_id text, parts integer) returns integer
  language sql immutable strict parallel safe
  as $$ select (('x' || left(md5(stream_id), 8))::bit(32)::bigint % parts)::integer $$;
