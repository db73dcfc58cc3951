import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
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
