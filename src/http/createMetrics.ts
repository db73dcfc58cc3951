import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { RunnerObserver } from '../runner/createRunner.js';
import { PROJECTION_STATE_LIST } from '../projectionStates.js';
import type { StatusReport } from '../status/readStatusReport.js';

export interface MetricsOptions {
  /** Names of the loaded projections: each gets every per-projection series from the start. */
  projections: readonly string[];
  /** Reads progress from the database (one statement); called at most once per `refreshInterval`. */
  readStatus(): Promise<StatusReport>;
  logger: Logger;
  /** Milliseconds a progress read is reused for, however often `/metrics` is scraped. @defaultValue 1000 */
  refreshInterval?: number;
  /** Milliseconds a scrape waits for a progress read before it answers with the last values. @defaultValue 5000 */
  readTimeout?: number;
  /** @defaultValue `Date.now` */
  now?: () => number;
}

export interface Metrics {
  /** A registry of its own, so an application embedding projd keeps its global one. */
  readonly registry: Registry;
  /** The `Content-Type` of `render()`'s text. */
  readonly contentType: string;
  /** Hand it to every runner: it counts applied and failed events and times batches. */
  readonly observer: RunnerObserver;
  /** The Prometheus text, with progress gauges read afresh when the last read is older than `refreshInterval`. */
  render(): Promise<string>;
}

/** 1 ms to 60 s: a batch of a few events up to one that nears the default 30 s batch timeout. */
export const BATCH_DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * projd's Prometheus metrics. Counters and the batch histogram are fed by the runners through
 * `observer`; gauges of position, lag and state come from `readStatus`, the same data as
 * `projd status`, refreshed on scrape.
 */
export function createMetrics(options: MetricsOptions): Metrics {
  const { logger, refreshInterval = 1000, readTimeout = 5000, now = Date.now } = options;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const labelNames = ['projection'] as const;
  const registers = [registry];

  const position = new Gauge({
    name: 'projd_projection_position',
    help: 'Global position of the last event the projection checkpoint passed.',
    labelNames,
    registers,
  });
  const lagEvents = new Gauge({
    name: 'projd_projection_lag_events',
    help: 'Committed events of the projection types not applied yet: 0 when caught up, else an estimate of at least 1.',
    labelNames,
    registers,
  });
  const lagSeconds = new Gauge({
    name: 'projd_projection_lag_seconds',
    help: 'Age of the oldest committed event the projection has not applied; 0 when caught up.',
    labelNames,
    registers,
  });
  const parked = new Gauge({
    name: 'projd_projection_parked_events',
    help: 'Events of the projection parked in projd.failed_events.',
    labelNames,
    registers,
  });
  const state = new Gauge({
    name: 'projd_projection_state',
    help: '1 for the projection state (catching_up, live, stalled, failed, stopped), 0 for the others.',
    labelNames: ['projection', 'state'] as const,
    registers,
  });
  const applied = new Counter({
    name: 'projd_events_applied_total',
    help: 'Events applied and committed by this process.',
    labelNames,
    registers,
  });
  const failed = new Counter({
    name: 'projd_events_failed_total',
    help: 'Events this process parked, or stopped at, after their last failed attempt.',
    labelNames,
    registers,
  });
  const batchDuration = new Histogram({
    name: 'projd_batch_duration_seconds',
    help: 'Duration of the batches this process committed, from taking the lock to the commit.',
    labelNames,
    buckets: BATCH_DURATION_BUCKETS,
    registers,
  });
  // A split projection's parts, under names of their own: the per-projection series above stay
  // one per projection, so that sums and alerts over them mean what they meant before.
  const partPosition = new Gauge({
    name: 'projd_projection_part_position',
    help: 'Of a projection split into parts, global position of the last event the part checkpoint passed.',
    labelNames: ['projection', 'part'] as const,
    registers,
  });
  const partLagEvents = new Gauge({
    name: 'projd_projection_part_lag_events',
    help: 'Of a projection split into parts, committed events of the part not applied yet (an estimate, as projd_projection_lag_events).',
    labelNames: ['projection', 'part'] as const,
    registers,
  });
  // Both versions while a blue/green build runs beside the live one: the live one above and in
  // `projd_projection_version`, the one being built here.
  const storedVersion = new Gauge({
    name: 'projd_projection_version',
    help: 'Version of the projection that serves (its checkpoint); 0 before a daemon set it up.',
    labelNames,
    registers,
  });
  const buildVersion = new Gauge({
    name: 'projd_build_version',
    help: 'Version of the projection being built beside the live one (blue/green rebuild); 0 when none is.',
    labelNames,
    registers,
  });
  const buildPosition = new Gauge({
    name: 'projd_build_position',
    help: 'Global position of the last event the build checkpoint passed; 0 when no build runs.',
    labelNames,
    registers,
  });
  const buildLagEvents = new Gauge({
    name: 'projd_build_lag_events',
    help: 'Committed events of the projection types the build has not applied yet; 0 when no build runs.',
    labelNames,
    registers,
  });
  const head = new Gauge({
    name: 'projd_events_head_position',
    help: 'Highest position in projd.events.',
    registers,
  });
  const oldestOpenTransaction = new Gauge({
    name: 'projd_oldest_open_transaction_age_seconds',
    help: 'Age of the open transaction holding committed events back; 0 when none is.',
    registers,
  });

  const known = new Set(options.projections);
  for (const projection of known) {
    const labels = { projection };
    for (const gauge of [position, lagEvents, lagSeconds, parked, storedVersion, buildVersion, buildPosition, buildLagEvents]) {
      gauge.set(labels, 0);
    }
    for (const name of PROJECTION_STATE_LIST) state.set({ projection, state: name }, 0);
    applied.inc(labels, 0);
    failed.inc(labels, 0);
    batchDuration.zero(labels);
  }
  head.set(0);
  oldestOpenTransaction.set(0);

  function apply(report: StatusReport): void {
    head.set(Number(report.headPosition));
    oldestOpenTransaction.set(report.heldBackBy?.transactionAgeSeconds ?? 0);
    for (const status of report.projections) {
      if (!known.has(status.name)) continue;
      const labels = { projection: status.name };
      position.set(labels, Number(status.position));
      lagEvents.set(labels, Number(status.lagEvents));
      lagSeconds.set(labels, status.lagSeconds);
      parked.set(labels, status.failedEvents);
      storedVersion.set(labels, status.storedVersion ?? 0);
      buildVersion.set(labels, status.build?.version ?? 0);
      buildPosition.set(labels, Number(status.build?.position ?? 0));
      buildLagEvents.set(labels, Number(status.build?.lagEvents ?? 0));
      for (const name of PROJECTION_STATE_LIST) {
        state.set({ projection: status.name, state: name }, name === status.state ? 1 : 0);
      }
      for (const part of status.parts ?? []) {
        const partLabels = { projection: status.name, part: String(part.part) };
        partPosition.set(partLabels, Number(part.position));
        partLagEvents.set(partLabels, Number(part.lagEvents));
      }
    }
  }

  // One read in flight at a time, reused for `refreshInterval`; a failed read keeps the last values.
  let lastReadAt = Number.NEGATIVE_INFINITY;
  let reading: Promise<void> | undefined;
  function refresh(): Promise<void> {
    if (reading) return reading;
    if (now() - lastReadAt < refreshInterval) return Promise.resolve();
    lastReadAt = now();
    reading = options
      .readStatus()
      .then(apply, (error: unknown) => logger.warn({ err: errorMessage(error) }, 'metrics.read_failed'))
      .finally(() => {
        reading = undefined;
      });
    return reading;
  }

  const observer: RunnerObserver = {
    batchCommitted(batch) {
      if (!known.has(batch.projection)) return;
      applied.inc({ projection: batch.projection }, batch.applied);
      batchDuration.observe({ projection: batch.projection }, batch.durationSeconds);
    },
    eventFailed(failure) {
      if (known.has(failure.projection)) failed.inc({ projection: failure.projection });
    },
  };

  return {
    registry,
    contentType: registry.contentType,
    observer,
    async render() {
      // An unreachable database must not hang the scrape: the read goes on, the scrape does not wait.
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, readTimeout);
        timer.unref();
      });
      await Promise.race([refresh(), timeout]).finally(() => clearTimeout(timer));
      return registry.metrics();
    },
  };
}
