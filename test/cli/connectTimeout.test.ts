import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { ledgerProjectionSource } from '../helpers/ledger.js';
import { writeProject } from '../helpers/project.js';

// A server that accepts TCP connections and never says a word, like one whose process is
// frozen: no TCP error ever comes, so only the connect timeout ends the attempt.
const db = await createTestDatabase();
const accepted = new Set<net.Socket>();
const silent = net.createServer((socket) => {
  accepted.add(socket);
  socket.once('close', () => accepted.delete(socket));
});
let silentUrl: string;
let project: Awaited<ReturnType<typeof writeProject>>;

beforeAll(async () => {
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  silentUrl = `postgres://projd:secret@127.0.0.1:${(silent.address() as net.AddressInfo).port}/projd`;
  project = await writeProject({
    'projd.yaml': 'database:\n  connectTimeout: 1s\nmetrics:\n  port: 0\n',
    'listen-silent.yaml': `database:\n  listenUrl: ${silentUrl}\n  connectTimeout: 1s\nmetrics:\n  port: 0\n`,
    'projections/ledger.ts': await ledgerProjectionSource(),
  });
});

afterAll(async () => {
  for (const socket of accepted) socket.destroy();
  await new Promise((resolve) => silent.close(resolve));
  await project?.cleanup();
});

describe('a database that accepts connections but never answers', () => {
  it('fails a one-shot command after database.connectTimeout, exit 2 in one line', async () => {
    // runCli's own deadline (15 s) fails the test if the attempt hangs.
    const result = await runCli(['status'], { cwd: project.dir, env: { DATABASE_URL: silentUrl }, timeoutMs: 15_000 });
    expect(result.stderr).toBe(
      `projd: cannot connect to database ${silentUrl.replace('secret', '***')}: no answer within database.connectTimeout\n`,
    );
    expect(result.code).toBe(2);
  });

  it('fails projd run when database.listenUrl never answers, exit 2 in one line', async () => {
    const result = await runCli(['run', '-c', 'listen-silent.yaml'], {
      cwd: project.dir,
      env: { DATABASE_URL: db.url },
      timeoutMs: 15_000,
    });
    expect(result.stderr).toBe(
      `projd: cannot connect to database ${silentUrl.replace('secret', '***')}: no answer within database.connectTimeout\n`,
    );
    expect(result.code).toBe(2);
  });
});
