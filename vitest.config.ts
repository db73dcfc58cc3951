import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const source = (file: string) => fileURLToPath(new URL(file, import.meta.url));

export default defineConfig({
  // The example projections and their tests import projd by name, as a user's would; here
  // the name is this repository's source, as in tsconfig.json's paths.
  resolve: {
    alias: [
      { find: /^projd$/, replacement: source('./src/index.ts') },
      { find: /^projd\/testing$/, replacement: source('./src/testing/index.ts') },
    ],
  },
  test: {
    // projections/: the examples' own tests, written as a user writes them (see the README).
    include: ['test/**/*.test.ts', 'projections/**/*.test.ts'],
    // One PostgreSQL for the whole run, and the migrated template each file clones.
    globalSetup: ['test/helpers/postgres.ts'],
    // Process tests start daemons and PostgreSQL servers; a slow CI machine needs the room.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
    // Child processes: forks keep each file's signal handlers and env apart from the others'.
    pool: 'forks',
    // Two files at a time, each possibly with daemons of its own, is what 2 cores carry.
    maxWorkers: 2,
    // A flaky test is a bug to fix, not to retry.
    retry: 0,
  },
});
