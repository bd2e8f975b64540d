/**
 * Prometheus and promtool for the observability tests: found on PATH, installed by
 * scripts/prometheus-test.sh when the run requires it (DOCKWARD_E2E_REQUIRED=1, like the test
 * dockerd), skipped with the reason otherwise. The Prometheus started here listens on loopback
 * only, keeps its data in a temp dir and is stopped by its pid.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe } from 'vitest';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { REPO_ROOT } from './harness.js';
import { freePort } from '../../bench/gateway.js';

export const PROMETHEUS_DIR = path.join(REPO_ROOT, 'deploy', 'prometheus');
export const SCRAPE_CONFIG = path.join(PROMETHEUS_DIR, 'prometheus.yml');
export const ALERT_RULES = path.join(PROMETHEUS_DIR, 'alerts.yml');
export const ALERT_TESTS = path.join(PROMETHEUS_DIR, 'alerts.test.yml');
export const DASHBOARD = path.join(REPO_ROOT, 'deploy', 'grafana', 'dockward-dashboard.json');
const INSTALL_SCRIPT = path.join(REPO_ROOT, 'scripts', 'prometheus-test.sh');

const required = process.env.DOCKWARD_E2E_REQUIRED === '1';

function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(path.delimiter).some((d) => d && statSync(path.join(d, command), { throwIfNoEntry: false })?.isFile() === true);
}

export function prometheusInstalled(): boolean {
  return onPath('prometheus') && onPath('promtool');
}

/**
 * A describe() that needs prometheus and promtool. Without them it is skipped with the reason -
 * unless the run is required, when its tests install them first (and fail if that fails).
 */
export function describePrometheus(name: string, fn: () => void, outer: (name: string, fn: () => void) => void = describe): void {
  if (!prometheusInstalled() && !required) {
    describe.skip(`${name} [skipped: prometheus/promtool not installed (scripts/prometheus-test.sh install); required under DOCKWARD_E2E_REQUIRED=1]`, fn);
    return;
  }
  outer(name, fn);
}

/** Installs prometheus when it is missing (required runs only reach this without it). */
export async function ensurePrometheus(): Promise<void> {
  if (prometheusInstalled()) return;
  const r = await run('bash', [INSTALL_SCRIPT, 'install'], 900_000);
  if (r.code !== 0 || !prometheusInstalled()) {
    throw new Error(`DOCKWARD_E2E_REQUIRED=1 but prometheus could not be installed (scripts/prometheus-test.sh install exited ${r.code}):\n${r.stderr.slice(-4000)}`);
  }
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(file: string, args: string[], timeoutMs = 60_000, cwd = REPO_ROOT): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

export interface PromSample {
  metric: Record<string, string>;
  value: number;
}

export interface Prometheus {
  url: string;
  /** The scrape config it runs: the shipped one with the test's target and a 1 s interval. */
  configFile: string;
  /** An instant query; throws with Prometheus' error when the query is not valid. */
  query(promql: string): Promise<PromSample[]>;
  /** Polls `promql` until `done(samples)`; on timeout throws with the last answer. */
  waitFor(promql: string, done: (samples: PromSample[]) => boolean, what: string, timeoutMs?: number): Promise<PromSample[]>;
  api<T>(pathAndQuery: string): Promise<T>;
  logs(): string;
  stop(): Promise<void>;
}

/**
 * The shipped scrape config, templated: the dockward job scrapes `target` every second, and the
 * rule file is the shipped alerts.yml (absolute, since the config is written elsewhere).
 */
export async function templatedScrapeConfig(target: string): Promise<string> {
  const config = parseYaml(await readFile(SCRAPE_CONFIG, 'utf8')) as {
    global: Record<string, unknown>;
    rule_files: string[];
    scrape_configs: { job_name: string; scrape_interval?: string; static_configs: { targets: string[] }[] }[];
  };
  config.global.scrape_interval = '1s';
  config.global.evaluation_interval = '1s';
  config.rule_files = config.rule_files.map((f) => path.resolve(PROMETHEUS_DIR, f));
  const job = config.scrape_configs.find((j) => j.job_name === 'dockward');
  if (!job) throw new Error(`${SCRAPE_CONFIG} has no job "dockward"`);
  job.scrape_interval = '1s';
  job.static_configs = [{ targets: [target] }];
  return toYaml(config);
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export async function startPrometheus(target: string): Promise<Prometheus> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'dockward-prometheus-'));
  const configFile = path.join(dir, 'prometheus.yml');
  await writeFile(configFile, await templatedScrapeConfig(target));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    'prometheus',
    [`--config.file=${configFile}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  live.add(child);
  let log = '';
  child.stdout.on('data', (c: Buffer) => (log = (log + c.toString()).slice(-200_000)));
  child.stderr.on('data', (c: Buffer) => (log = (log + c.toString()).slice(-200_000)));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  child.on('exit', () => live.delete(child));

  const api = async <T>(p: string): Promise<T> => {
    const r = await fetch(`${url}${p}`);
    const body = (await r.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`Prometheus ${p}: ${body.error ?? r.status}`);
    return body.data;
  };
  const query = async (promql: string): Promise<PromSample[]> => {
    const data = await api<{ resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] }>(`/api/v1/query?query=${encodeURIComponent(promql)}`);
    if (data.resultType !== 'vector') throw new Error(`${promql}: expected a vector, got ${data.resultType}`);
    return data.result.map((s) => ({ metric: s.metric, value: Number(s.value[1]) }));
  };

  const until = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`prometheus exited (${child.exitCode}) before it was ready:\n${log}`);
    try {
      if ((await fetch(`${url}/-/ready`)).status === 200) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > until) {
      child.kill('SIGKILL');
      throw new Error(`prometheus was not ready within 60 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }

  return {
    url,
    configFile,
    query,
    api,
    async waitFor(promql, done, what, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      let last: PromSample[] | string = [];
      for (;;) {
        try {
          last = await query(promql);
          if (done(last)) return last;
        } catch (e) {
          last = (e as Error).message;
        }
        if (Date.now() > deadline) throw new Error(`${what}: not seen within ${timeoutMs} ms; last answer to ${promql}:\n${JSON.stringify(last, null, 2)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    },
    logs: () => log,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      if (process.env.DOCKWARD_TEST_KEEP !== '1') await rm(dir, { recursive: true, force: true });
    },
  };
}

/** `{a="1",b="2"} 3` lines, sorted: readable in a failed assertion. */
export function samplesText(samples: PromSample[]): string[] {
  return samples
    .map((s) => {
      const labels = Object.entries(s.metric)
        .filter(([k]) => k !== 'job' && k !== 'instance')
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => `${k}="${v}"`)
        .join(',');
      return `{${labels}} ${s.value}`;
    })
    .sort();
}

/** Every PromQL expression of the shipped Grafana dashboard. */
export async function dashboardQueries(): Promise<{ panel: string; expr: string }[]> {
  const dash = JSON.parse(await readFile(DASHBOARD, 'utf8')) as { panels: { title: string; targets?: { expr: string }[] }[] };
  return dash.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
}

/** A dashboard expression as Grafana would send it, for a given job and time window. */
export function substituteDashboardVariables(expr: string, job = '.*'): string {
  return expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$__range', '1h')
    .replaceAll('$job', job)
    .replaceAll('$instance', '.*');
}
