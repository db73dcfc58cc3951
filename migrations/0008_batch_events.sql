-- The events of the batch in flight, for a projection's SQL batch handler (`batch:`), which
-- reads them in place instead of receiving them: in delivery order, of the projection's types
-- (and part), after the checkpoint and up to the batch's last event. The runner sets the bounds
-- with set_config(…, true) in the batch's transaction, so they end with it; outside a batch the
-- settings are unset (or '' once a transaction has set them) and no row is returned.
--   projd.batch_after, projd.batch_through: 'era/transaction_id/position', after is exclusive
--   projd.batch_types, projd.batch_prefixes: text[] of exact types and LIKE prefixes
--   projd.batch_part, projd.batch_parts: the part, and the number of parts (1: no split)
-- A single SELECT in plain SQL, stable, without SET or SECURITY DEFINER: PostgreSQL inlines it
-- into the calling statement, which then reads the delivery-order index between the bounds.
create function projd.batch_events() returns setof projd.events
  language sql stable
  as $$
    with bounds as (
      select nullif(current_setting('projd.batch_after', true), '') as after,
             nullif(current_setting('projd.batch_through', true), '') as through,
             coalesce(nullif(current_setting('projd.batch_types', true), ''), '{}')::text[] as types,
             coalesce(nullif(current_setting('projd.batch_prefixes', true), ''), '{}')::text[] as prefixes,
             coalesce(nullif(current_setting('projd.batch_part', true), ''), '0')::integer as part,
             coalesce(nullif(current_setting('projd.batch_parts', true), ''), '1')::integer as parts
    )
    select e.*
      from projd.events e, bounds b
     where (e.era, e.transaction_id, e.position)
             > (split_part(b.after, '/', 1)::integer, split_part(b.after, '/', 2)::xid8, split_part(b.after, '/', 3)::bigint)
       and (e.era, e.transaction_id, e.position)
             <= (split_part(b.through, '/', 1)::integer, split_part(b.through, '/', 2)::xid8, split_part(b.through, '/', 3)::bigint)
       and (e.type = any(b.types) or e.type like any(b.prefixes))
       and (b.parts = 1 or projd.stream_part(e.stream_id, b.parts) = b.part)
     order by e.era, e.transaction_id, e.position
  $$;
