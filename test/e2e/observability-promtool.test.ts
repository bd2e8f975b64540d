/**
 * The shipped Prometheus files, checked by Prometheus' own promtool: the scrape config, the alert
 * rules, and the alerts' unit tests (deploy/prometheus/alerts.test.yml: each alert fires on the
 * series that should fire it, and not on a healthy neighbour). Plus the Grafana dashboard: valid
 * JSON whose every query names only metrics the gateway exports.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/metrics/metrics.js';
import { ALERT_RULES, ALERT_TESTS, DASHBOARD, dashboardQueries, describePrometheus, ensurePrometheus, PROMETHEUS_DIR, run, SCRAPE_CONFIG, templatedScrapeConfig } from './observability-tools.js';

describePrometheus('the shipped Prometheus files pass promtool', () => {
  beforeAll(ensurePrometheus, 900_000);

  it('promtool check config: the scrape config (and the rule file it loads)', async () => {
    const r = await run('promtool', ['check', 'config', SCRAPE_CONFIG]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/SUCCESS: 1 rule files found/);
  });

  it('promtool check config: the scrape config as the e2e test templates it', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'dw-promcfg-'));
    try {
      const file = path.join(dir, 'prometheus.yml');
      await writeFile(file, await templatedScrapeConfig('127.0.0.1:19400'));
      const r = await run('promtool', ['check', 'config', file]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('promtool check rules: the alert rules', async () => {
    const r = await run('promtool', ['check', 'rules', ALERT_RULES]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SUCCESS: 8 rules found/);
  });

  it('promtool test rules: every alert fires when it should and only then', async () => {
    const r = await run('promtool', ['test', 'rules', path.basename(ALERT_TESTS)], 120_000, PROMETHEUS_DIR);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SUCCESS/);
  });

  it('the alert tests cover every alert', async () => {
    const rules = await readFile(ALERT_RULES, 'utf8');
    const tests = await readFile(ALERT_TESTS, 'utf8');
    const alerts = [...rules.matchAll(/^\s+- alert: (\w+)$/gm)].map((m) => m[1]!);
    expect(alerts).toEqual(expect.arrayContaining(['DockwardDaemonDown', 'DockwardDenialSpike', 'DockwardHigh5xxRate', 'DockwardPolicyReloadFailed']));
    for (const a of alerts) expect(tests, `alerts.test.yml has no firing case for ${a}`).toMatch(new RegExp(`alertname: ${a}\\n\\s+exp_alerts:\\n\\s+- exp_labels`));
  });
});

describe('the shipped Grafana dashboard', () => {
  it('is JSON whose queries name only metrics the gateway exports', async () => {
    const dash = JSON.parse(await readFile(DASHBOARD, 'utf8')) as { uid: string; panels: unknown[]; templating: { list: { name: string }[] } };
    expect(dash.uid).toBe('dockward-gateway');
    expect(dash.templating.list.map((v) => v.name)).toEqual(['datasource', 'job', 'instance']);
    const text = await createMetrics(new Registry()).registry.metrics();
    const exported = new Set([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap((m) => (m[2] === 'histogram' ? [`${m[1]}_bucket`, `${m[1]}_count`, `${m[1]}_sum`] : [m[1]!])));
    const queries = await dashboardQueries();
    expect(queries.length).toBeGreaterThan(20);
    for (const { panel, expr } of queries) {
      const names = [...expr.matchAll(/\b((?:dockward|process|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1]!);
      expect(names.length, `${panel}: ${expr}`).toBeGreaterThan(0);
      for (const n of names) expect(exported.has(n), `${panel}: ${n} is not exported`).toBe(true);
    }
  });
});
