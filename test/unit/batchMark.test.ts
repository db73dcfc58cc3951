import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { daemonApplicationName } from '../../src/store/connect.js';
import { MIGRATIONS_DIR } from '../../src/store/migrate.js';
import { BATCH_MARK, BATCH_MARK_PATTERN } from '../../src/store/snapshotGate.js';

/** SQL's `like` for the patterns used here: `%` any run of characters, no `_`, no escapes. */
function like(value: string, pattern: string): boolean {
  const regex = pattern.split('%').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*');
  return new RegExp(`^${regex}$`, 's').test(value);
}

describe("a batch's mark", () => {
  it("is the name a batch gives its connection, and no other connection of a daemon's", () => {
    expect(daemonApplicationName('batch').startsWith(`${BATCH_MARK} `)).toBe(true);
    expect(like(daemonApplicationName('batch'), BATCH_MARK_PATTERN)).toBe(true);
    for (const role of ['daemon', 'listener', 'cli'] as const) {
      expect(like(daemonApplicationName(role), BATCH_MARK_PATTERN), role).toBe(false);
    }
  });

  // Each migration that redefines projd.events_notify() must keep the refusal.
  it.each(['0012_batches_append_no_events', '0013_wake_on_demand'])(
    'is the pattern the events trigger refuses appends under (migration %s)',
    async (migration) => {
      const sql = await readFile(path.join(MIGRATIONS_DIR, `${migration}.sql`), 'utf8');
      expect(sql).toContain(`current_setting('application_name') like '${BATCH_MARK_PATTERN}'`);
    },
  );
});
