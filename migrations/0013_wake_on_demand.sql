-- Writers notify only when a daemon waits for them, instead of at every insert. A transaction
-- that has sent NOTIFY takes a database-wide lock as it commits and holds it until its commit
-- record is flushed: every notifying writer commits after the one before, one WAL flush at a
-- time, however many run at once. Now a daemon going idle *arms* the wake-up, the first writer
-- after that notifies, and the others, whose events the woken daemon reads anyway, commit side
-- by side.
--
-- A writer that inserted before the arming, and so stays silent, may commit after the daemon
-- looked: the daemon would sleep through its event. So every writer holds an advisory lock,
-- shared, from its insert to its end, and a daemon arms *then* checks that lock: held, a silent
-- writer is in flight, and the daemon looks again soon instead of sleeping (projd.arm_wakeup).

-- Armed while wake_armed is ahead of wake_fired. wake_firer is the transaction that notified
-- last, wake_fired_at when (milliseconds since the epoch). Sequences: not transactional, so what
-- one session sets every other sees at once, and no one ever waits for a row lock.
create sequence projd.wake_armed minvalue 0 start with 0;
create sequence projd.wake_fired minvalue 0 start with 0;
create sequence projd.wake_firer minvalue 0 start with 0;
create sequence projd.wake_fired_at minvalue 0 start with 0;
-- Armed from the start: a daemon waits before anything is written.
select setval('projd.wake_armed', 1);

-- The writer that took the wake-up last, and how it stands: 'committed', 'in progress',
-- 'aborted', null when its status is too old to be kept; 'none' when no writer took it yet, or
-- when its id is beyond this cluster's: recorded by another cluster (the store was restored
-- here), which pg_xact_status refuses. An id below the snapshot's xmax is safe to ask about; at
-- or above it, it is either running here or another cluster's, and only the refusal tells.
create function projd.wake_firer_status(out firer bigint, out status text)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
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
$$;

-- One writer notifies per arming: the first after it. Its notification reaches the daemons at
-- its commit; should it have rolled back (its notification with it), the next writer notifies
-- at once, and should it still be open 50 ms later, the next writer notifies too. If no writer
-- comes after it, the daemon's own watch looks at it (src/runner/wakeWatch.ts). A firer of
-- another cluster is owed: whatever it sent, no daemon here heard it.
create function projd.wake_owed() returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$
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
$$;

-- The lock key is advisoryLockKey('wake', 'events') of src/store/names.ts.
create or replace function projd.events_notify() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
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
$$;

-- Arms the wake-up, then says whether no silent writer is in flight: true, a daemon that reads
-- the store after this (in a later statement, so a later snapshot) may sleep until notified;
-- false, a writer that inserted before the arming has not ended, and will not notify.
create function projd.arm_wakeup() returns boolean
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
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
$$;
