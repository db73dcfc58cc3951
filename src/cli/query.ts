import { queryReadOnly } from '../operations/queryReadOnly.js';
import { loadConfig } from '../config/loadConfig.js';
import { UserError } from '../errors.js';
import type { CommonOptions } from './main.js';
import { renderQueryResult } from './render.js';

export interface QueryCommandOptions extends CommonOptions {
  json?: boolean;
}

/**
 * `projd query <sql>`: one statement in a read-only transaction, printed as a table (as psql
 * would) or, with `--json`, as an array of row objects. For looking at read models.
 */
export async function queryCommand(sql: string, options: QueryCommandOptions): Promise<void> {
  if (sql.trim() === '') throw new UserError('query: no SQL given');
  const config = await loadConfig({ file: options.config, env: process.env, cwd: process.cwd() });
  const result = await queryReadOnly(config, sql);
  process.stdout.write(options.json ? `${JSON.stringify(result.objects, null, 2)}\n` : renderQueryResult(result));
}
