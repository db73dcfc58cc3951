-- projd.batch_events() again, reading its settings once per statement instead of once per row.
-- Written as one CTE, the bounds were inlined into the row filter, so every event of a batch
-- parsed the type arrays from text again: a third of a large batch's read. Each setting is now
-- a scalar subquery, which PostgreSQL runs once (an InitPlan) and whose value the index scan
-- and the filter then share. Same rows, same order, still inlined into the calling statement.
create or replace function projd.batch_events() returns setof projd.events
  language sql stable
  as $$
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
  $$;
