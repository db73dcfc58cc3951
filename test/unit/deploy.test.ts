import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { loadConfig } from '../../src/config/loadConfig.js';
import { createMetrics } from '../../src/http/createMetrics.js';
import { silentLogger } from '../../src/log.js';
import { PROJECTION_STATE_LIST } from '../../src/projectionStates.js';

// The deployment files in deploy/ and the Dockerfile are examples users copy as they are: each
// must agree with what projd serves and how it shuts down.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function read(file: string): string {
  return readFileSync(path.join(ROOT, file), 'utf8');
}

/** The configuration the image and the manifests run with. */
async function deployConfig() {
  return loadConfig({ file: 'deploy/projd.yaml', cwd: ROOT, env: { DATABASE_URL: 'postgres://db/app' } });
}

/** Every PromQL expression of the dashboard and the alert rules, with where it comes from. */
function expressions(): { source: string; expr: string }[] {
  const dashboard = JSON.parse(read('deploy/grafana/projd-dashboard.json')) as {
    panels: { title: string; targets: { expr: string }[] }[];
  };
  const alerts = parseYaml(read('deploy/prometheus/alerts.yaml')) as {
    groups: { rules: { alert: string; expr: string }[] }[];
  };
  return [
    ...dashboard.panels.flatMap((panel) => panel.targets.map(({ expr }) => ({ source: panel.title, expr }))),
    ...alerts.groups.flatMap((group) => group.rules.map(({ alert, expr }) => ({ source: alert, expr }))),
  ];
}

/** The Prometheus text a daemon with one projection serves before its first read. */
async function servedMetrics(): Promise<string> {
  const metrics = createMetrics({
    projections: ['balances'],
    readStatus: () => Promise.reject(new Error('no database in this test')),
    logger: silentLogger(),
  });
  return metrics.render();
}

describe('the Grafana dashboard and the alert rules', () => {
  it('use only series that /metrics serves', async () => {
    const text = await servedMetrics();
    const servedSeries = new Set(text.split('\n').map((line) => /^([a-z_:]+)[{ ]/.exec(line)?.[1]));
    const unknown = expressions().flatMap(({ source, expr }) =>
      [...expr.matchAll(/\bprojd_[a-z_]+/g)].map(([name]) => name).filter((name) => !servedSeries.has(name)).map((name) => `${source}: ${name}`),
    );
    expect(unknown).toEqual([]);
  });

  it('select only states that projd_projection_state has', () => {
    const states = expressions().flatMap(({ expr }) => [...expr.matchAll(/state="([a-z_]+)"/g)].map((match) => match[1]));
    expect(states.length).toBeGreaterThan(0);
    for (const state of states) expect(PROJECTION_STATE_LIST).toContain(state);
  });

  it('cover lag in events and seconds, apply rate, parked events, stalled and failed states, batch duration', () => {
    const all = expressions().map(({ expr }) => expr).join('\n');
    for (const needed of [
      'projd_projection_lag_events',
      'projd_projection_lag_seconds',
      'rate(projd_events_applied_total',
      'projd_projection_parked_events',
      'state="stalled"',
      'state="failed"',
      'projd_batch_duration_seconds_bucket',
    ]) {
      expect(all, needed).toContain(needed);
    }
  });
});

describe('deploy/projd.yaml', () => {
  it('loads, and listens on every interface so that probes and scrapes reach the container', async () => {
    const config = await deployConfig();
    expect(config.metrics).toEqual({ host: '0.0.0.0', port: 9464 });
  });
});

describe('Dockerfile', () => {
  // Instructions on one line each: a trailing backslash continues one.
  const dockerfile = read('Dockerfile').replace(/\\\n\s*/g, '');
  const finalStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));

  it('runs `projd run` as a non-root user with the deploy configuration', () => {
    const user = /^USER\s+(\S+)/m.exec(finalStage)?.[1];
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
    const entrypoint = JSON.parse(/^ENTRYPOINT\s+(\[.*\])$/m.exec(finalStage)![1]!) as string[];
    expect(entrypoint).toEqual(['node', '/app/bin/projd.js', 'run', '-c', '/app/projd.yaml']);
    expect(finalStage).toMatch(/^COPY deploy\/projd\.yaml \.\/projd\.yaml$/m);
  });

  it('checks health on /livez at the configured port', async () => {
    const { metrics } = await deployConfig();
    expect(finalStage).toMatch(new RegExp(`^HEALTHCHECK .*http://127\\.0\\.0\\.1:${metrics.port}/livez`, 'm'));
    expect(finalStage).toMatch(new RegExp(`^EXPOSE ${metrics.port}$`, 'm'));
  });

  it('copies only files that exist, and leaves the embedded PostgreSQL out', () => {
    for (const [, source] of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const file of source!.split(/\s+/)) expect(existsSync(path.join(ROOT, file)), file).toBe(true);
    }
    expect(finalStage).toContain('npm ci --omit=dev');
  });
});

describe('deploy/kubernetes/projd.yaml', () => {
  const documents = parseAllDocuments(read('deploy/kubernetes/projd.yaml')).map((document) => document.toJS());
  const deployment = documents.find((document) => document.kind === 'Deployment');
  const pod = deployment.spec.template;
  const container = pod.spec.containers[0];

  it('probes /livez for liveness and /readyz for readiness on the metrics port', async () => {
    const { metrics } = await deployConfig();
    const port = container.ports.find((candidate: { name: string }) => candidate.name === container.livenessProbe.httpGet.port);
    expect(port.containerPort).toBe(metrics.port);
    expect(container.livenessProbe.httpGet.path).toBe('/livez');
    expect(container.readinessProbe.httpGet.path).toBe('/readyz');
  });

  it('gives SIGTERM longer than shutdownTimeout before the pod is killed', async () => {
    const { shutdownTimeout } = await deployConfig();
    expect(pod.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(shutdownTimeout);
  });

  it('is scraped: annotations on the pod and a ServiceMonitor on the Service', async () => {
    const { metrics } = await deployConfig();
    expect(pod.metadata.annotations).toMatchObject({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': String(metrics.port),
      'prometheus.io/path': '/metrics',
    });
    const monitor = documents.find((document) => document.kind === 'ServiceMonitor');
    const service = documents.find((document) => document.kind === 'Service');
    expect(monitor.spec.selector.matchLabels).toEqual(service.metadata.labels);
    expect(service.spec.ports.map((port: { name: string }) => port.name)).toContain(monitor.spec.endpoints[0].port);
  });
});

describe('deploy/systemd/projd.service', () => {
  const unit = read('deploy/systemd/projd.service');
  const setting = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(unit)?.[1];

  it('runs `projd run`, stops with SIGTERM and waits longer than shutdownTimeout', async () => {
    const { shutdownTimeout } = await deployConfig();
    expect(setting('ExecStart')).toMatch(/projd\.js run\b/);
    expect(setting('KillSignal')).toBe('SIGTERM');
    expect(Number(setting('TimeoutStopSec')) * 1000).toBeGreaterThan(shutdownTimeout);
  });

  it('does not restart on a configuration error (exit 2), and runs as its own user', () => {
    expect(setting('RestartPreventExitStatus')).toBe('2');
    expect(setting('User')).toBe('projd');
  });
});
