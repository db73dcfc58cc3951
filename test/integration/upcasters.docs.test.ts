import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { compileYamlProjection } from '../../src/projection/compileYamlProjection.js';
import { testProjection, type GivenEvent, type ProjectionTest } from '../../src/testing/index.js';
import { writeProject, type Project } from '../helpers/project.js';

// The schema versions example of docs/projections.md, run as written: the module and the YAML
// file give the same read model from events stored at versions 1, 2 and 3.
const databaseUrl = inject('postgresAdminUrl');
const DOCS = readFileSync(new URL('../../docs/projections.md', import.meta.url), 'utf8');

/** The block of the docs in `language` that starts with the comment naming `projections/<file>`. */
function documented(language: 'ts' | 'yaml', file: string): string {
  const comment = language === 'ts' ? '//' : '#';
  const pattern = new RegExp('```' + language + '\\n([\\s\\S]*?)```', 'g');
  const block = [...DOCS.matchAll(pattern)].map((match) => match[1]!).find((text) => text.startsWith(`${comment} projections/${file}\n`));
  if (block === undefined) throw new Error(`docs/projections.md has no block for projections/${file}`);
  return block;
}

const EVENTS: GivenEvent[] = [
  { streamId: 'a-1', type: 'account.opened', data: { owner: 'Ada' }, schemaVersion: 1 },
  { streamId: 'a-2', type: 'account.opened', data: { holder: 'Bob' }, schemaVersion: 2 },
  { streamId: 'a-3', type: 'account.opened', data: { holder: 'Cy', currency: 'USD' }, schemaVersion: 3 },
];
const EXPECTED = [
  { account_id: 'a-1', holder: 'Ada', currency: 'EUR' },
  { account_id: 'a-2', holder: 'Bob', currency: 'EUR' },
  { account_id: 'a-3', holder: 'Cy', currency: 'USD' },
];

const tests: ProjectionTest[] = [];
let project: Project | undefined;
afterAll(async () => {
  for (const t of tests) await t.close();
  await project?.cleanup();
});

describe('the schema versions example of the docs', () => {
  it('the module lifts versions 1 and 2 to 3', async () => {
    project = await writeProject({ 'projections/account_holders.ts': documented('ts', 'account_holders.ts') });
    const t = await testProjection(project.path('projections/account_holders.ts'), { databaseUrl });
    tests.push(t);
    await t.given(EVENTS);
    expect(await t.query('select account_id, holder, currency from account_holders order by account_id')).toEqual(EXPECTED);
  });

  it('the YAML file, in its batch SQL, gives the same read model', async () => {
    const t = await testProjection(compileYamlProjection(documented('yaml', 'account_holders.yaml'), 'docs'), { databaseUrl });
    tests.push(t);
    await t.given(EVENTS);
    expect(await t.query('select account_id, holder, currency from account_holders order by account_id')).toEqual(EXPECTED);
    await expect(t.given([{ streamId: 'a-4', type: 'account.opened', data: {}, schemaVersion: 4 }])).rejects.toThrow(
      "projection 'account_holders': 'account.opened' event has schema version 4; it knows versions 1 to 3",
    );
  });
});
