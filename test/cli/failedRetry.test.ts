import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { recordFailure } from '../../src/store/failedEvents.js';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { appendItems, itemsProjectionSource } from '../helpers/items.js';
import { writeProject, type Project } from '../helpers/project.js';
import { cliTranscript } from '../helpers/transcript.js';

// `projd failed retry` checks every target before it acts on any: an event it has no handler
// for is refused with exit 2, and no parked event is touched (a retry that could only fail
// would overwrite the error the event was parked with, and count an attempt).

const db = await createTestDatabase();
const ids: string[] = [];

/** `poison` as the folder now has it: it handles `item.removed`, no longer `item.added`. */
const POISON_WITHOUT_HANDLER = `import { defineProjection } from 'projd';
export default defineProjection({ name: 'poison', version: 1, handlers: { 'item.removed': async () => {} } });
`;
/** `counter` handles `item.added`, so its parked event alone could be retried. */
const COUNTER = itemsProjectionSource({ name: 'counter', poisoned: false });

beforeAll(async () => {
  await appendItems(db.pool, 3);
  const { rows } = await db.pool.query<{ position: string }>('select position::text from projd.events order by position');
  const failure = { errorClass: 'handler' as const, message: 'poison event', code: null };
  // Parked by a daemon whose `poison` still handled item.added, and one of `counter`'s.
  ids.push(String(await recordFailure(db.pool, 'poison', BigInt(rows[0]!.position), failure, 3)));
  ids.push(String(await recordFailure(db.pool, 'poison', BigInt(rows[1]!.position), failure, 3)));
  ids.push(String(await recordFailure(db.pool, 'counter', BigInt(rows[2]!.position), failure, 3)));
});

let project: Project | undefined;
afterEach(async () => {
  await project?.cleanup();
  project = undefined;
});

/** Every recorded failed event, as stored: status, attempts, error and times. */
async function failedRows(): Promise<unknown[]> {
  const { rows } = await db.pool.query('select * from projd.failed_events order by id');
  return rows;
}

async function refusedRetry(args: string[], files: Record<string, string>): Promise<string> {
  project = await writeProject({ 'projd.yaml': 'metrics:\n  port: 0\n', ...files });
  const before = await failedRows();
  const result = await runCli(['failed', 'retry', ...args], { cwd: project.dir, env: { DATABASE_URL: db.url } });
  expect(result.code, `stderr:\n${result.stderr}\nstdout:\n${result.stdout}`).toBe(2);
  expect(result.stderr, 'exactly one line on stderr').toMatch(/^[^\n]+\n$/);
  expect(result.stdout).toBe('');
  expect(await failedRows(), 'no failed event touched').toEqual(before);
  expect(before).toHaveLength(3);
  return cliTranscript(['failed', 'retry', ...args], result, [[project.dir, '<project>']]);
}

describe('failed retry, an event without a handler', () => {
  it('is refused by id, naming the event, its projection and its type', async () => {
    const transcript = await refusedRetry([ids[0]!], { 'projections/poison.ts': POISON_WITHOUT_HANDLER });
    expect(transcript).toBe(
      [
        `$ projd failed retry ${ids[0]}`,
        `projd: failed event ${ids[0]}: projection 'poison' (<project>/projections/poison.ts) has no handler for 'item.added'; nothing was retried`,
        'Exit code: 2',
      ].join('\n'),
    );
  });

  it('among others that could be retried, refuses them all', async () => {
    const transcript = await refusedRetry([ids[2]!, ids[1]!, ids[0]!], {
      'projections/poison.ts': POISON_WITHOUT_HANDLER,
      'projections/counter.ts': COUNTER,
    });
    expect(transcript).toBe(
      [
        `$ projd failed retry ${ids[2]} ${ids[1]} ${ids[0]}`,
        `projd: failed event ${ids[1]}: projection 'poison' (<project>/projections/poison.ts) has no handler for 'item.added' (and 1 more like it); nothing was retried`,
        'Exit code: 2',
      ].join('\n'),
    );
  });

  it('is refused with --all', async () => {
    const transcript = await refusedRetry(['--all'], {
      'projections/poison.ts': POISON_WITHOUT_HANDLER,
      'projections/counter.ts': COUNTER,
    });
    expect(transcript).toBe(
      [
        '$ projd failed retry --all',
        `projd: failed event ${ids[0]}: projection 'poison' (<project>/projections/poison.ts) has no handler for 'item.added' (and 1 more like it); nothing was retried`,
        'Exit code: 2',
      ].join('\n'),
    );
  });

  it('is refused when its projection is no longer in the folder', async () => {
    const transcript = await refusedRetry([ids[1]!], { 'projections/counter.ts': COUNTER });
    expect(transcript).toBe(
      [
        `$ projd failed retry ${ids[1]}`,
        `projd: failed event ${ids[1]}: projection 'poison' is not in <project>/projections; nothing was retried`,
        'Exit code: 2',
      ].join('\n'),
    );
  });
});
