import { migrateStore } from '../app.js';
import { loadConfig } from '../config/loadConfig.js';
import type { CommonOptions } from './main.js';

/** `projd migrate`: prints what it applied, one migration per line, or that nothing was pending. */
export async function migrateCommand(options: CommonOptions): Promise<void> {
  const config = await loadConfig({ file: options.config, env: process.env, cwd: process.cwd() });
  const applied = await migrateStore(config);
  if (applied.length === 0) process.stdout.write('projd: database is up to date\n');
  for (const id of applied) process.stdout.write(`applied ${id}\n`);
}
