/**
 * A real Prometheus (Debian's package) scrapes a real gateway (`dockward serve`) while the real
 * docker CLI drives it against the test dockerd: allowed, denied, unauthenticated, hijacked (run -i,
 * exec) and streamed (logs -f) requests. PromQL through Prometheus' HTTP API must return the
 * expected counts; the shipped alert rules load and stay quiet; every query of the shipped Grafana
 * dashboard is valid on this data; the audit lines of the run are JSON and hold no token.
 *
 * Prometheus runs the shipped deploy/prometheus/prometheus.yml, templated with this gateway's
 * metrics port and a 1 s scrape interval.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeE2E, dockerStream, labelArgs, startGateway, TEST_IMAGE, uniqueName, type Gateway } from './harness.js';
import {
  dashboardQueries,
  describePrometheus,
  ensurePrometheus,
  samplesText,
  startPrometheus,
  substituteDashboardVariables,
  type PromSample,
  type Prometheus,
} from './observability-tools.js';

const POLICY = `rules:
  - name: everyone-pings
    effect: allow
    subjects: ["*"]
    actions: [system.ping, system.ping.head, system.version]
  - name: qa-may-not-list
    effect: deny
    subjects: ["group:qa"]
    actions: [container.list]
  - name: dev-works
    effect: allow
    subjects: ["group:dev"]
    actions: ["container.*", "exec.*", image.inspect]
`;
const ALICE = { sub: 'alice', groups: ['dev'] };
const BOB = { sub: 'bob', groups: ['qa'] };
const RUN = ['run', '--network', 'none', ...labelArgs()];

const one = (samples: PromSample[]) => (samples.length === 1 ? samples[0]!.value : Number.NaN);

describePrometheus(
  'a real Prometheus scrapes the gateway during a docker CLI session',
  () => {
    let gw: Gateway;
    let prom: Prometheus;
    const name = uniqueName('obs');
    /** Tokens this test sent itself (the CLI's are in the gateway dir's docker-config-* dirs). */
    const sentTokens: string[] = [];

    beforeAll(async () => {
      await ensurePrometheus();
      gw = await startGateway({ policyYaml: POLICY });
      prom = await startPrometheus(`127.0.0.1:${gw.metricsPort}`);
      await prom.waitFor('up{job="dockward"}', (s) => one(s) === 1, 'the first scrape');
    }, 900_000);
    afterAll(async () => {
      await prom?.stop();
    });

    it('sees the gateway up, the daemon reachable and the policy loaded', async () => {
      expect(one(await prom.waitFor('dockward_upstream_up', (s) => s.length === 1, 'dockward_upstream_up'))).toBe(1);
      expect(one(await prom.query('dockward_policy_last_reload_successful'))).toBe(1);
      expect(one(await prom.query('dockward_policy_rules'))).toBe(3);
    });

    it('counts allowed, denied, unauthenticated, hijacked and streamed requests as they happened', async () => {
      // Allowed, twice; denied once by a deny rule.
      for (let i = 0; i < 2; i++) {
        const ps = await gw.dockerAs(ALICE, ['ps', '--all', '--filter', `name=${name}`]);
        expect(ps.code, ps.stderr).toBe(0);
      }
      const denied = await gw.dockerAs(BOB, ['ps']);
      expect(denied.code).not.toBe(0);
      expect(denied.stderr).toContain('dockward: denied by rule qa-may-not-list');

      // Unauthenticated: three without a token, one with an expired token.
      const expired = gw.token('alice', ['dev'], -60);
      sentTokens.push(expired);
      for (const auth of [undefined, undefined, undefined, `Bearer ${expired}`]) {
        const r = await fetch(`${gw.url}/v1.41/containers/json`, { headers: auth ? { Authorization: auth } : {} });
        expect(r.status).toBe(401);
      }

      // Hijacked: docker run -i (attach), stdin to stdout through the gateway.
      const echo = await gw.dockerAs(ALICE, [...RUN, '-i', '--rm', TEST_IMAGE, 'cat'], { input: 'hello\n' });
      expect(echo.code, echo.stderr).toBe(0);
      expect(echo.stdout).toBe('hello\n');

      // Streamed, and a session: `logs -f` and `exec` held open while Prometheus looks.
      const started = await gw.dockerAs(ALICE, [...RUN, '-d', '--name', name, TEST_IMAGE, 'sh', '-c', 'echo ready; sleep 300']);
      expect(started.code, started.stderr).toBe(0);
      const configDir = await gw.dockerConfigDir(ALICE.sub, ALICE.groups);
      const logs = await dockerStream(['logs', '--follow', name], { host: gw.host, configDir });
      // The exec keeps writing: a session whose client was killed ends at its next write (a silent
      // one stays open until its process writes or exits - as it would on dockerd's own socket).
      const exec = await dockerStream(['exec', name, 'sh', '-c', 'echo started; while true; do sleep 1; echo tick; done'], { host: gw.host, configDir });
      await logs.waitFor('ready');
      await exec.waitFor('started');
      await prom.waitFor('dockward_active_streams{kind=~"logs|exec"}', (s) => samplesText(s).join(' ') === '{__name__="dockward_active_streams",kind="exec"} 1 {__name__="dockward_active_streams",kind="logs"} 1', 'one open logs stream and one open exec session');
      // Bytes of open streams are counted as they flow, not only when the stream ends.
      await prom.waitFor('dockward_stream_bytes_total{kind="logs",direction="out"}', (s) => one(s) > 0, 'bytes of the open logs stream');
      await logs.kill();
      await exec.kill();
      await prom.waitFor('sum(dockward_active_streams{kind=~"logs|exec|attach"})', (s) => one(s) === 0, 'the streams closed');

      const counts = await prom.waitFor(
        'sum by (action, decision, code) (dockward_requests_total{action=~"container.list|container.attach|exec.start|container.logs|unclassified"})',
        (s) => samplesText(s).length === 6,
        'the request counts',
      );
      expect(samplesText(counts)).toEqual(
        [
          '{action="container.attach",code="101",decision="allow"} 1',
          '{action="container.list",code="200",decision="allow"} 2',
          '{action="container.list",code="403",decision="deny"} 1',
          '{action="container.logs",code="200",decision="allow"} 1',
          '{action="exec.start",code="101",decision="allow"} 1',
          '{action="unclassified",code="401",decision="unauthenticated"} 4',
        ].sort(),
      );
      expect(samplesText(await prom.query('dockward_denials_total{rule="qa-may-not-list"}'))).toEqual(['{__name__="dockward_denials_total",rule="qa-may-not-list"} 1']);
      expect(samplesText(await prom.query('dockward_auth_failures_total{reason=~"missing|expired"}'))).toEqual([
        '{__name__="dockward_auth_failures_total",reason="expired"} 1',
        '{__name__="dockward_auth_failures_total",reason="missing"} 3',
      ]);
      expect(samplesText(await prom.query('sum by (group) (dockward_group_requests_total{decision="deny"})'))).toEqual(['{group="qa"} 1']);
      for (const [kind, direction] of [['attach', 'in'], ['attach', 'out'], ['exec', 'out'], ['logs', 'out']]) {
        expect(one(await prom.query(`dockward_stream_bytes_total{kind="${kind}",direction="${direction}"}`)), `${kind} ${direction}`).toBeGreaterThan(0);
      }
      // Every request has its gateway time, and only forwarded ones have daemon time.
      const total = one(await prom.query('sum(dockward_requests_total)'));
      expect(one(await prom.query('sum(dockward_gateway_overhead_seconds_count)'))).toBe(total);
      const forwarded = one(await prom.query('sum(dockward_requests_total{decision="allow"})'));
      expect(one(await prom.query('sum(dockward_upstream_duration_seconds_count)'))).toBe(forwarded);
    });

    it('stored no container name, id or user name as a label value', async () => {
      const ps = await gw.dockerAs(ALICE, ['ps', '--all', '--quiet', '--no-trunc', '--filter', `name=${name}`]);
      const id = ps.stdout.trim();
      expect(id).toMatch(/^[0-9a-f]{64}$/);
      const series = await prom.api<Record<string, string>[]>(`/api/v1/series?match[]=${encodeURIComponent('{job="dockward"}')}`);
      expect(series.length).toBeGreaterThan(50);
      const values = new Set(series.flatMap((s) => Object.entries(s).filter(([k]) => k !== '__name__').map(([, v]) => v)));
      for (const v of values) {
        for (const bad of [name, id.slice(0, 12), 'alice', 'bob', '/containers']) expect(v, `label value ${v}`).not.toContain(bad);
      }
    });

    it('loaded the shipped alert rules, healthy, with none firing', async () => {
      const rules = await prom.api<{ groups: { name: string; rules: { name: string; health: string; lastError?: string }[] }[] }>('/api/v1/rules?type=alert');
      const group = rules.groups.find((g) => g.name === 'dockward');
      expect(group?.rules.map((r) => r.name)).toEqual(expect.arrayContaining(['DockwardDaemonDown', 'DockwardDenialSpike', 'DockwardHigh5xxRate', 'DockwardPolicyReloadFailed']));
      // Evaluated every second: wait until each rule has been evaluated once.
      type Rules = { groups: { rules: { name: string; health: string; lastError?: string }[] }[] };
      let evaluated: Rules;
      const deadline = Date.now() + 30_000;
      do {
        evaluated = await prom.api<Rules>('/api/v1/rules?type=alert');
        if (evaluated.groups.flatMap((g) => g.rules).every((r) => r.health !== 'unknown')) break;
        await new Promise((r) => setTimeout(r, 250));
      } while (Date.now() < deadline);
      for (const r of evaluated.groups.flatMap((g) => g.rules)) expect([r.name, r.health, r.lastError ?? '']).toEqual([r.name, 'ok', '']);
      const alerts = await prom.api<{ alerts: { labels: { alertname: string }; state: string }[] }>('/api/v1/alerts');
      expect(alerts.alerts.filter((a) => a.state === 'firing').map((a) => a.labels.alertname)).toEqual([]);
    });

    it('answers every query of the shipped Grafana dashboard, with data for the panels this run fed', async () => {
      const empty: string[] = [];
      for (const { panel, expr } of await dashboardQueries()) {
        const samples = await prom.query(substituteDashboardVariables(expr, 'dockward'));
        if (samples.length === 0) empty.push(panel);
      }
      // Panels whose metrics this run did not move may be empty (no upstream errors, ...);
      // these must show data.
      for (const panel of ['Docker daemon', 'Last policy reload', 'Rules in force', 'Requests by decision', 'Requests by action (top 10)', 'Denials by rule', 'Denials by group', 'Authentication failures by reason', 'Gateway overhead', 'Open streams by kind', 'Bytes relayed by direction', 'CPU', 'Memory']) {
        expect(empty, `panel "${panel}" has no data`).not.toContain(panel);
      }
    });

    it('wrote audit lines that are JSON, one per decision plus session ends, and hold no token', async () => {
      const text = await readFile(gw.auditFile, 'utf8');
      const records = text
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l) as { event: string; action: string; decision: string; rule: string | null; subject: { user: string } | null; status: number | null; bytesIn: number; bytesOut: number; requestId: string });
      const denied = records.filter((r) => r.decision === 'deny');
      expect(denied.map((r) => [r.action, r.rule, r.subject?.user, r.status])).toEqual([['container.list', 'qa-may-not-list', 'bob', 403]]);
      expect(records.filter((r) => r.decision === 'unauthenticated').map((r) => [r.subject, r.status])).toEqual(Array(4).fill([null, 401]));
      // Each hijacked session: on record when it was allowed, and again when it ended.
      for (const action of ['container.attach', 'exec.start']) {
        const open = records.filter((r) => r.action === action && r.event === 'stream-open');
        const close = records.filter((r) => r.action === action && r.event === 'stream-close');
        expect(open, action).toHaveLength(1);
        expect(close.map((r) => [r.requestId, r.status]), action).toEqual([[open[0]!.requestId, 101]]);
        expect(close[0]!.bytesOut, action).toBeGreaterThan(0);
      }

      const tokens = [...sentTokens];
      for (const d of (await readdir(gw.dir)).filter((f) => f.startsWith('docker-config-'))) {
        const config = JSON.parse(await readFile(path.join(gw.dir, d, 'config.json'), 'utf8')) as { HttpHeaders: { Authorization: string } };
        tokens.push(config.HttpHeaders.Authorization.replace(/^Bearer /, ''));
      }
      expect(tokens.length).toBeGreaterThanOrEqual(3);
      for (const t of tokens) expect(text).not.toContain(t);
      expect(text).not.toContain('eyJ');
      expect(text).not.toContain(gw.secret);
    });
  },
  describeE2E,
);
