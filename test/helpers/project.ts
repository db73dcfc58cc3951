import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface Project {
  /** Absolute path of the temp project. */
  dir: string;
  /** Absolute path of a file inside it. */
  path(relative: string): string;
  /** Removes the whole directory. Idempotent. */
  cleanup(): Promise<void>;
}

export interface WriteProjectOptions {
  /**
   * Link `node_modules/projd` to this repository, so projection modules can
   * `import { defineProjection } from 'projd'` (it resolves to the built `dist/`).
   * @defaultValue true
   */
  linkPackage?: boolean;
}

/**
 * Writes `files` (relative path → content; folders are created) into a fresh temp dir:
 * `writeProject({ 'projd.yaml': …, 'projections/balances.ts': … })`.
 */
export async function writeProject(files: Record<string, string>, options: WriteProjectOptions = {}): Promise<Project> {
  // realpath: on some systems the temp dir is behind a symlink, and paths in output should match `dir`.
  const dir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'projd-project-')));
  const resolve = (relative: string): string => {
    const absolute = path.resolve(dir, relative);
    if (absolute !== dir && !absolute.startsWith(dir + path.sep)) {
      throw new Error(`writeProject: '${relative}' points outside the project`);
    }
    return absolute;
  };
  for (const [relative, content] of Object.entries(files)) {
    const file = resolve(relative);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
  }
  if (options.linkPackage ?? true) {
    await mkdir(path.join(dir, 'node_modules'), { recursive: true });
    await symlink(REPO_ROOT, path.join(dir, 'node_modules', 'projd'), 'dir');
  }
  return {
    dir,
    path: resolve,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
