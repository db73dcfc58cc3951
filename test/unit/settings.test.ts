import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { defineProjection } from '../../src/projection/defineProjection.js';
import { runnerSettings } from '../../src/settings.js';

const base = { name: 'balances', version: 1, setup: 'select 1', eventTypes: ['account.credited'] };

describe('runnerSettings batchSize', async () => {
  const config = await loadConfig({ env: { DATABASE_URL: 'postgres://localhost/db' }, cwd: os.tmpdir(), file: undefined });
  const tuned = { ...config, projections: { ...config.projections, batchSize: 300, sqlBatchSize: 7000 } };

  it('gives a SQL batch handler projections.sqlBatchSize', () => {
    expect(runnerSettings(tuned, defineProjection({ ...base, batch: 'select 1' })).batchSize).toBe(7000);
  });

  it('gives a module batch handler and per-event handlers projections.batchSize', () => {
    const moduleBatch = defineProjection({ ...base, handleBatch: async () => {} });
    const perEvent = defineProjection({ ...base, eventTypes: undefined, handlers: { 'account.credited': async () => {} } });
    expect(runnerSettings(tuned, moduleBatch).batchSize).toBe(300);
    expect(runnerSettings(tuned, perEvent).batchSize).toBe(300);
  });

  it("lets the projection's own batchSize win over both", () => {
    expect(runnerSettings(tuned, defineProjection({ ...base, batch: 'select 1', batchSize: 50 })).batchSize).toBe(50);
    expect(runnerSettings(tuned, defineProjection({ ...base, handleBatch: async () => {}, batchSize: 50 })).batchSize).toBe(50);
  });
});
