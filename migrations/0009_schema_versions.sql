-- Event schema versions: a YAML projection's batch SQL reads its events through upcasters,
-- SQL expressions that lift `data` from one schema version to the next. An event whose
-- version has no path up fails the batch with this error, which names the projection, the
-- event type, the stored version and the versions the projection knows; the runner then
-- isolates that event as it does any failing one. Volatile, so the planner never evaluates it
-- ahead of the rows that reach it. The words match the runner's own message for handlers.
create function projd.schema_version_unknown(projection text, type text, version integer, lowest integer, current integer)
  returns jsonb
  language plpgsql volatile
  as $$
  begin
    raise exception 'projection ''%'': ''%'' event has schema version %; it knows versions % to %',
      projection, type, version, lowest, current
      using errcode = 'data_exception';
  end
  $$;
