import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/database.js';
import { dumpSchema } from '../helpers/schemaDump.js';

// Any change to projd's schema shows in review as a diff of test/schema.sql. After adding a
// migration (or merging one), regenerate it with `npm run schema:update` and commit it.
const DUMP_FILE = fileURLToPath(new URL('../schema.sql', import.meta.url));
const HEADER = `-- projd's schema as the shipped migrations leave it, read from the catalogs.
-- Checked by test/integration/store.schema.test.ts; regenerate with \`npm run schema:update\`.

`;

// Cloned from the template that globalSetup migrated with projd's own migrate().
const migrated = await createTestDatabase();

describe('the schema', () => {
  it('is the one committed in test/schema.sql', async () => {
    const dump = HEADER + (await dumpSchema(migrated.pool));
    if (process.env.UPDATE_SCHEMA_DUMP === '1') await writeFile(DUMP_FILE, dump);

    const committed = await readFile(DUMP_FILE, 'utf8').catch(() => '');
    expect(dump, 'the schema differs from test/schema.sql: run `npm run schema:update` and review the diff').toBe(committed);
  });
});
