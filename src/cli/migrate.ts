import { adoptStore, migrateStore, startNewStoreEra } from '../operations/migrateStore.js';
import { loadConfig } from '../config/loadConfig.js';
import type { CommonOptions } from './main.js';

export interface MigrateOptions extends CommonOptions {
  newEra?: boolean;
  adopt?: boolean;
}

/** `projd migrate`: prints what it applied, one migration per line, or that nothing was pending. */
export async function migrateCommand(options: MigrateOptions): Promise<void> {
  const config = await loadConfig({ file: options.config, env: process.env, cwd: process.cwd() });
  const applied = await migrateStore(config);
  if (applied.length === 0) process.stdout.write('projd: database is up to date\n');
  for (const id of applied) process.stdout.write(`applied ${id}\n`);
  if (options.adopt) {
    const adopted = await adoptStore(config);
    for (const line of adopted.done) process.stdout.write(`${line}\n`);
  }
  if (options.newEra) {
    const era = await startNewStoreEra(config);
    process.stdout.write(
      era
        ? `started era ${era.to}: the ${era.from === 0 ? 'restored' : `era ${era.from}`} events sort before every new one\n`
        : 'projd: no new era needed: the stored transaction ids belong to this cluster\n',
    );
  }
}
