import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/http/createMetrics.js';
import { silentLogger } from '../../src/log.js';
import type { ProjectionStatus, StatusReport } from '../../src/status/readStatusReport.js';
import { projectionStatus } from '../helpers/fixtures.js';

/** A status at position 0, never updated, as a fresh projection's. */
function freshStatus(overrides: Partial<ProjectionStatus>): ProjectionStatus {
  return projectionStatus({ position: '0', headPosition: '0', updatedAt: null, ...overrides });
}

function report(projections: ProjectionStatus[], overrides: Partial<StatusReport> = {}): StatusReport {
  return { readAt: '2025-01-01T00:00:00.000Z', headPosition: '120', heldBackBy: null, projections, ...overrides };
}

/** The value of one series in Prometheus text, or undefined when the series is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('createMetrics', () => {
  it('has every per-projection series from the start, at zero, before any read succeeds', async () => {
    const metrics = createMetrics({
      projections: ['balances', 'deposits'],
      readStatus: () => Promise.reject(new Error('database down')),
      logger: silentLogger(),
    });
    const text = await metrics.render();
    for (const projection of ['balances', 'deposits']) {
      const label = `{projection="${projection}"}`;
      for (const name of [
        'projd_projection_position',
        'projd_projection_lag_events',
        'projd_projection_lag_seconds',
        'projd_projection_parked_events',
        'projd_events_applied_total',
        'projd_events_failed_total',
        'projd_batch_duration_seconds_count',
        'projd_batch_duration_seconds_sum',
      ]) {
        expect(sample(text, `${name}${label}`), `${name}${label}`).toBe(0);
      }
      expect(sample(text, `projd_batch_duration_seconds_bucket{le="0.001",projection="${projection}"}`)).toBe(0);
      expect(sample(text, `projd_batch_duration_seconds_bucket{le="60",projection="${projection}"}`)).toBe(0);
      expect(sample(text, `projd_projection_state{projection="${projection}",state="live"}`)).toBe(0);
    }
    expect(sample(text, 'projd_events_head_position')).toBe(0);
    expect(sample(text, 'projd_oldest_open_transaction_age_seconds')).toBe(0);
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(metrics.contentType).toMatch(/^text\/plain/);
  });

  it('keeps one series per projection for a split one, with its parts under names of their own', async () => {
    const part = (index: number, position: string, lagEvents: string) => ({
      part: index,
      state: 'live' as const,
      position,
      lagEvents,
      lagSeconds: 0,
      updatedAt: null,
      owner: null,
      blockedBy: null,
      lastError: null,
      lastErrorAt: null,
    });
    const metrics = createMetrics({
      projections: ['balances'],
      readStatus: async () =>
        report([freshStatus({ name: 'balances', position: '90', lagEvents: '30', parts: [part(0, '90', '30'), part(1, '120', '0')] })]),
      logger: silentLogger(),
    });
    const text = await metrics.render();
    expect(sample(text, 'projd_projection_position{projection="balances"}')).toBe(90);
    expect(sample(text, 'projd_projection_lag_events{projection="balances"}')).toBe(30);
    expect(sample(text, 'projd_projection_part_position{projection="balances",part="0"}')).toBe(90);
    expect(sample(text, 'projd_projection_part_position{projection="balances",part="1"}')).toBe(120);
    expect(sample(text, 'projd_projection_part_lag_events{projection="balances",part="0"}')).toBe(30);
    expect(sample(text, 'projd_projection_part_lag_events{projection="balances",part="1"}')).toBe(0);
  });

  it('sets progress gauges from the status read, and reads at most once per interval', async () => {
    let clock = 0;
    let reads = 0;
    const metrics = createMetrics({
      projections: ['balances'],
      readStatus: async () => {
        reads += 1;
        const stalled = freshStatus({
          state: 'stalled',
          position: String(100 + reads),
          lagEvents: '20',
          lagSeconds: 4.5,
          failedEvents: 2,
        });
        const heldBackBy = {
          pid: 1,
          database: null,
          user: null,
          applicationName: null,
          state: 'idle in transaction',
          transactionStartedAt: null,
          transactionAgeSeconds: 61,
          queryStartedAt: null,
          query: null,
        };
        return report([stalled], { heldBackBy });
      },
      logger: silentLogger(),
      refreshInterval: 1000,
      now: () => clock,
    });
    const [first, concurrent] = await Promise.all([metrics.render(), metrics.render()]);
    expect(reads).toBe(1);
    expect(sample(concurrent, 'projd_projection_position{projection="balances"}')).toBe(101);
    expect(sample(first, 'projd_projection_position{projection="balances"}')).toBe(101);
    expect(sample(first, 'projd_projection_lag_events{projection="balances"}')).toBe(20);
    expect(sample(first, 'projd_projection_lag_seconds{projection="balances"}')).toBe(4.5);
    expect(sample(first, 'projd_projection_parked_events{projection="balances"}')).toBe(2);
    expect(sample(first, 'projd_projection_state{projection="balances",state="stalled"}')).toBe(1);
    expect(sample(first, 'projd_projection_state{projection="balances",state="live"}')).toBe(0);
    expect(sample(first, 'projd_events_head_position')).toBe(120);
    expect(sample(first, 'projd_oldest_open_transaction_age_seconds')).toBe(61);

    clock = 999;
    await metrics.render();
    expect(reads).toBe(1);
    clock = 1000;
    expect(sample(await metrics.render(), 'projd_projection_position{projection="balances"}')).toBe(102);
    expect(reads).toBe(2);
  });

  it('counts applied and failed events and times batches through the runner observer', async () => {
    const metrics = createMetrics({
      projections: ['balances'],
      readStatus: async () => report([freshStatus({})]),
      logger: silentLogger(),
    });
    const { observer } = metrics;
    observer.batchCommitted?.({ projection: 'balances', applied: 40, durationSeconds: 0.02, to: null });
    observer.batchCommitted?.({ projection: 'balances', applied: 2, durationSeconds: 3, to: null });
    observer.eventFailed?.({ projection: 'balances', position: 17n, policy: 'park' });
    const text = await metrics.render();
    expect(sample(text, 'projd_events_applied_total{projection="balances"}')).toBe(42);
    expect(sample(text, 'projd_events_failed_total{projection="balances"}')).toBe(1);
    expect(sample(text, 'projd_batch_duration_seconds_count{projection="balances"}')).toBe(2);
    expect(sample(text, 'projd_batch_duration_seconds_bucket{le="0.025",projection="balances"}')).toBe(1);
    expect(sample(text, 'projd_batch_duration_seconds_bucket{le="5",projection="balances"}')).toBe(2);
  });
});

describe('createMetrics, database unreachable', () => {
  it('answers with the last values once a read takes longer than readTimeout, and starts no second read', async () => {
    let reads = 0;
    const metrics = createMetrics({
      projections: ['balances'],
      readStatus: () => {
        reads += 1;
        return new Promise<StatusReport>(() => {});
      },
      logger: silentLogger(),
      readTimeout: 20,
      refreshInterval: 0,
    });
    expect(sample(await metrics.render(), 'projd_projection_position{projection="balances"}')).toBe(0);
    await metrics.render();
    expect(reads).toBe(1);
  });
});
