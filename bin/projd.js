#!/usr/bin/env node
// Runs the CLI built into dist/ (npm install and npm ci build it through `prepare`).
import('../dist/cli-default.js').catch((error) => {
  if (error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/cli-default.js')) {
    process.stderr.write('projd: not built yet: run `npm install` (or `npm run build`) in the projd folder\n');
    process.exitCode = 3;
    return;
  }
  throw error;
});
