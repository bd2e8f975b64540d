/**
 * Metrics and the observer: bounded labels, the gateway/daemon time split, stream kinds, bytes of
 * open streams, the reload gauges, the upstream probe and the health endpoints.
 * The whole exposition after a scripted run through a real gateway is in metrics-exposition.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { Socket, type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { AuditRecord, AuditSink } from '../../src/audit/audit.js';
import { ACTIONS } from '../../src/docker/catalogue.js';
import {
  authFailureReason,
  codeLabel,
  createMetrics,
  DURATION_BUCKETS,
  MAX_USER_LABELS,
  OVERHEAD_BUCKETS,
  STREAM_KINDS,
  upstreamErrorKind,
  type Metrics,
} from '../../src/metrics/metrics.js';
import { createObservability } from '../../src/metrics/observability.js';
import { createMetricsApp, createUpstreamCheck } from '../../src/metrics/server.js';
import type { RequestContext } from '../../src/pipeline/context.js';
import { createObserver, outcomeOf, streamKindOf } from '../../src/pipeline/observe.js';
import { compilePolicy } from '../../src/policy/index.js';
import type { Identity, Rejection } from '../../src/types.js';

const ALICE: Identity = { user: 'alice', groups: ['dev', 'people'], via: 'jwt' };

function ctx(over: Partial<RequestContext> & { action?: string } = {}): RequestContext {
  const { action, ...rest } = over;
  return {
    id: 'test-1',
    startNs: process.hrtime.bigint() - 5_000_000n,
    remote: '127.0.0.1',
    method: 'GET',
    url: '/v1.41/containers/json',
    headers: {},
    upgrade: false,
    bodySource: { present: false, read: () => Promise.resolve(Buffer.alloc(0)) },
    bytesIn: 0,
    bytesOut: 0,
    ...(action ? { classification: { action, params: {} } } : {}),
    ...rest,
    socket: rest.socket ?? new Socket(),
  };
}

const deny = (rule: string): Partial<RequestContext> => ({
  identity: ALICE,
  decision: { effect: 'deny', rule, reason: 'no' },
  rejection: { status: 403, code: 'denied', message: `denied by rule ${rule}: no` },
});
const allow = (rule = 'everyone-reads'): Partial<RequestContext> => ({
  identity: ALICE,
  decision: { effect: 'allow', rule, reason: 'yes' },
  decidedNs: process.hrtime.bigint() - 1_000_000n,
  status: 200,
});

function memoryAudit(): AuditSink & { records: AuditRecord[] } {
  const records: AuditRecord[] = [];
  return { records, write: (r) => void records.push(r), reopen() {}, close: () => Promise.resolve() };
}

async function values(m: Metrics, name: string): Promise<Record<string, number>> {
  const metric = m.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const out: Record<string, number> = {};
  for (const v of (await metric.get()).values) {
    const labels = Object.entries(v.labels)
      .map(([k, val]) => `${k}=${val}`)
      .sort()
      .join(',');
    out[labels] = v.value;
  }
  return out;
}

async function nonZero(m: Metrics, name: string): Promise<Record<string, number>> {
  return Object.fromEntries(Object.entries(await values(m, name)).filter(([, v]) => v !== 0));
}

describe('the metric set', () => {
  it('registers every metric of interface.md, the gateway/daemon split, health and audit metrics, and the Node defaults', async () => {
    const m = createMetrics(new Registry());
    const text = await m.registry.metrics();
    const types = Object.fromEntries([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((x) => [x[1], x[2]]));
    expect(types).toMatchObject({
      dockward_requests_total: 'counter',
      dockward_request_duration_seconds: 'histogram',
      dockward_gateway_overhead_seconds: 'histogram',
      dockward_upstream_duration_seconds: 'histogram',
      dockward_denials_total: 'counter',
      dockward_decisions_total: 'counter',
      dockward_group_requests_total: 'counter',
      dockward_auth_failures_total: 'counter',
      dockward_upstream_errors_total: 'counter',
      dockward_upstream_up: 'gauge',
      dockward_active_streams: 'gauge',
      dockward_stream_bytes_total: 'counter',
      dockward_policy_reloads_total: 'counter',
      dockward_policy_rules: 'gauge',
      dockward_policy_last_reload_successful: 'gauge',
      dockward_policy_last_reload_success_timestamp_seconds: 'gauge',
      dockward_audit_dropped_total: 'counter',
      process_cpu_seconds_total: 'counter',
      process_resident_memory_bytes: 'gauge',
      nodejs_eventloop_lag_p99_seconds: 'gauge',
    });
    // User names are label values only when the operator asks for them.
    expect(types.dockward_user_requests_total).toBeUndefined();
  });

  it('adds dockward_user_requests_total only with metrics.userLabel', async () => {
    const obs = createObservability({ audit: { file: '-' }, metrics: { userLabel: true } }, { registry: new Registry(), defaultMetrics: false, audit: { stream: devNull() } });
    expect(await obs.metrics.registry.metrics()).toMatch(/^# TYPE dockward_user_requests_total counter$/m);
    await obs.close();
  });

  it('has buckets that resolve tens of microseconds of gateway work and minutes of daemon calls', () => {
    expect(OVERHEAD_BUCKETS[0]).toBeLessThanOrEqual(0.00001);
    expect(OVERHEAD_BUCKETS.filter((b) => b < 0.001).length).toBeGreaterThanOrEqual(5);
    expect(DURATION_BUCKETS[0]).toBeLessThanOrEqual(0.00025);
    expect(DURATION_BUCKETS.filter((b) => b >= 1).length).toBeGreaterThanOrEqual(5);
    expect(DURATION_BUCKETS.at(-1)).toBeGreaterThanOrEqual(300);
    for (const b of [OVERHEAD_BUCKETS, DURATION_BUCKETS]) expect([...b].sort((x, y) => x - y)).toEqual(b);
  });

  it('creates the series alerts read at 0, so that increase() sees their first increment', async () => {
    const m = createMetrics(new Registry(), { defaultMetrics: false });
    expect(await values(m, 'dockward_policy_reloads_total')).toEqual({ 'result=success': 0, 'result=error': 0 });
    expect(await values(m, 'dockward_audit_dropped_total')).toEqual({ 'reason=backlog': 0, 'reason=error': 0 });
    expect(await values(m, 'dockward_denials_total')).toEqual({ 'rule=default-deny': 0 });
    expect(Object.keys(await values(m, 'dockward_active_streams')).sort()).toEqual(STREAM_KINDS.map((k) => `kind=${k}`).sort());
    expect(await values(m, 'dockward_auth_failures_total')).toMatchObject({ 'reason=missing': 0, 'reason=expired': 0, 'reason=signature': 0 });
  });
});

describe('bounded label values', () => {
  it.each([
    ['a daemon status', 200, '200'],
    ['a gateway refusal', 403, '403'],
    ['an upgrade', 101, '101'],
    ['a status no server sends', 1234, 'other'],
    ['not a number', Number.NaN, 'other'],
  ])('code: %s', (_name, status, label) => {
    expect(codeLabel(status)).toBe(label);
  });

  it.each([
    ['a reason of the jwt verifier', 'expired', 'expired'],
    ['a reason added later', 'jwks_unavailable', 'jwks_unavailable'],
    ['free text', 'token rejected: jwt malformed', 'other'],
    ['an overlong identifier', 'x'.repeat(40), 'other'],
  ])('auth failure reason: %s', (_name, reason, label) => {
    expect(authFailureReason(reason)).toBe(label);
  });

  it.each([
    ['no socket', 'ENOENT', 'unreachable'],
    ['daemon not listening', 'ECONNREFUSED', 'unreachable'],
    ['connection reset', 'ECONNRESET', 'reset'],
    ['permission on the socket', 'EACCES', 'permission'],
    ['a message, not a code', 'socket hang up', 'other'],
  ])('upstream error kind: %s', (_name, code, kind) => {
    expect(upstreamErrorKind(code)).toBe(kind);
  });

  it.each([
    ['docker attach / run -i', 'container.attach', 'attach'],
    ['docker exec', 'exec.start', 'exec'],
    ['BuildKit', 'session', 'buildkit'],
    ['docker logs', 'container.logs', 'logs'],
    ['docker service logs', 'service.logs', 'logs'],
    ['docker events', 'system.events', 'events'],
    ['docker stats', 'container.stats', 'stats'],
    ['the /wait of docker run', 'container.wait', 'wait'],
    ['docker ps', 'container.list', 'request'],
    ['docker export (long, but finite)', 'container.export', 'request'],
    ['an unknown route', 'unknown', 'request'],
  ])('stream kind: %s', (_name, action, kind) => {
    expect(streamKindOf(action)).toBe(kind);
  });

  it('maps every hijackable action of the catalogue to a session kind', () => {
    const hijackable = ACTIONS.filter((x) => x.hijack);
    expect(hijackable.length).toBeGreaterThan(0);
    for (const a of hijackable) expect(['attach', 'exec', 'buildkit']).toContain(streamKindOf(a.name));
  });

  const rej = (status: Rejection['status'], code: string): Rejection => ({ status, code, message: 'm' });
  it.each([
    ['allowed and answered', { decision: { effect: 'allow', rule: 'r', reason: '' }, status: 200 }, 'allow'],
    ['allowed, the daemon answered 500', { decision: { effect: 'allow', rule: 'r', reason: '' }, status: 500 }, 'allow'],
    ['allowed, the daemon unreachable', { decision: { effect: 'allow', rule: 'r', reason: '' }, rejection: rej(502, 'upstream_unavailable') }, 'allow'],
    ['denied', { decision: { effect: 'deny', rule: 'r', reason: '' }, rejection: rej(403, 'denied') }, 'deny'],
    ['no credentials', { rejection: rej(401, 'unauthenticated') }, 'unauthenticated'],
    ['a malformed path', { rejection: rej(400, 'bad_path') }, 'invalid'],
    ['an oversized body', { rejection: rej(413, 'body_too_large') }, 'invalid'],
    ['a gateway fault', { rejection: rej(500, 'internal') }, 'error'],
  ] as [string, Partial<RequestContext>, string][])('decision: %s', (_name, over, outcome) => {
    expect(outcomeOf(ctx(over))).toBe(outcome);
  });
});

describe('the observer', () => {
  const policy = compilePolicy([
    {
      file: 'p.yaml',
      text: `rules:
  - name: dev-reads
    effect: allow
    subjects: ["group:dev"]
    actions: [container.list]
  - name: no-kill-for-ops
    effect: deny
    subjects: ["group:ops"]
    actions: [container.kill]
`,
    },
  ], { actions: ACTIONS });
  if (!policy.policy) throw new Error(JSON.stringify(policy.errors));
  const compiled = policy.policy;

  function setup(userLabel = false) {
    const audit = memoryAudit();
    const obs = createObservability({ audit: { file: '-' }, metrics: { userLabel } }, { registry: new Registry(), defaultMetrics: false });
    // The sink of createObservability is not used: the observer under test writes to memory.
    void obs.close();
    const observer = createObserver(obs.metrics, audit, { groups: () => new Set(['dev', 'ops']) });
    return { m: obs.metrics, observer, audit, obs };
  }

  it('labels groups only with groups the policies name, and callers in none of them as (none)', async () => {
    const { m, observer } = setup();
    observer.finish(ctx({ action: 'container.list', ...allow(), identity: { user: 'alice', groups: ['dev', 'secret-project-x'], via: 'jwt' } }));
    observer.finish(ctx({ action: 'container.kill', ...deny('no-kill-for-ops'), identity: { user: 'bob', groups: ['ops', 'dev'], via: 'jwt' } }));
    observer.finish(ctx({ action: 'container.list', ...allow(), identity: { user: 'carol', groups: ['marketing'], via: 'jwt' } }));
    expect(await nonZero(m, 'dockward_group_requests_total')).toEqual({
      'decision=allow,group=dev': 1,
      'decision=deny,group=ops': 1,
      'decision=deny,group=dev': 1,
      'decision=allow,group=(none)': 1,
    });
    expect(await m.registry.metrics()).not.toMatch(/secret-project-x|marketing|alice|bob|carol/);
  });

  it('puts user names in labels only when opted in, and caps their number', async () => {
    const { m, observer } = setup(true);
    for (let i = 0; i < MAX_USER_LABELS + 5; i++) observer.finish(ctx({ action: 'container.list', ...allow(), identity: { user: `u${i}`, groups: [], via: 'jwt' } }));
    const users = await nonZero(m, 'dockward_user_requests_total');
    expect(Object.keys(users)).toHaveLength(MAX_USER_LABELS + 1);
    expect(users['decision=allow,user=(other)']).toBe(5);
  });

  it('labels requests refused before classification as unclassified, never with their path', async () => {
    const { m, observer } = setup();
    observer.finish(ctx({ url: '/v1.41/containers/7f3e9a1b/kill?signal=KILL', rejection: { status: 401, code: 'unauthenticated', message: 'authentication required' } }));
    expect(await nonZero(m, 'dockward_requests_total')).toEqual({ 'action=unclassified,code=401,decision=unauthenticated': 1 });
    expect(await m.registry.metrics()).not.toMatch(/7f3e9a1b/);
  });

  it('counts denials and decisions by rule', async () => {
    const { m, observer } = setup();
    observer.finish(ctx({ action: 'container.kill', ...deny('no-kill-for-ops') }));
    observer.finish(ctx({ action: 'container.kill', ...deny('default-deny') }));
    observer.finish(ctx({ action: 'container.list', ...allow('dev-reads') }));
    expect(await nonZero(m, 'dockward_denials_total')).toEqual({ 'rule=no-kill-for-ops': 1, 'rule=default-deny': 1 });
    expect(await nonZero(m, 'dockward_decisions_total')).toEqual({ 'effect=deny,rule=no-kill-for-ops': 1, 'effect=deny,rule=default-deny': 1, 'effect=allow,rule=dev-reads': 1 });
  });

  it("splits a forwarded request's time into the gateway's part and the daemon's part", async () => {
    const { m, observer } = setup();
    const start = process.hrtime.bigint() - 2_000_000_000n;
    // 2 ms in the gateway, then ~2 s at the daemon.
    observer.finish(ctx({ action: 'container.stop', ...allow(), startNs: start, decidedNs: start + 2_000_000n, status: 204 }));
    const overhead = (await m.overhead.get()).values;
    const upstream = (await m.upstreamDuration.get()).values;
    const sum = (vs: typeof overhead) => vs.find((v) => v.metricName?.endsWith('_sum'))!.value;
    expect(sum(overhead)).toBeCloseTo(0.002, 6);
    expect(sum(upstream)).toBeGreaterThanOrEqual(1.99);
    // The overhead lands in a sub-10 ms bucket, the daemon's time in the seconds.
    const bucket = (vs: typeof overhead, le: number) => vs.find((v) => v.metricName?.endsWith('_bucket') && (v.labels as Record<string, unknown>).le === le)!.value;
    expect(bucket(overhead, 0.0025)).toBe(1);
    expect(bucket(overhead, 0.001)).toBe(0);
    expect(bucket(upstream, 1)).toBe(0);
    expect(bucket(upstream, 2.5)).toBe(1);
  });

  it('counts a refusal entirely as gateway time, and nothing as daemon time', async () => {
    const { m, observer } = setup();
    observer.finish(ctx({ action: 'container.kill', ...deny('default-deny') }));
    const count = async (h: Metrics['overhead']) => (await h.get()).values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
    expect(await count(m.overhead)).toBe(1);
    expect(await count(m.upstreamDuration)).toBe(0);
  });

  it('counts open streams by kind and folds their bytes in at scrape time, without counting twice', async () => {
    const { m, observer, audit } = setup();
    const logs = ctx({ action: 'container.logs', ...allow(), status: undefined });
    const attach = ctx({ id: 'test-2', action: 'container.attach', upgrade: true, method: 'POST', ...allow(), status: undefined });
    observer.streamOpened('response', logs);
    observer.streamOpened('hijack', attach);
    expect(await nonZero(m, 'dockward_active_streams')).toEqual({ 'kind=logs': 1, 'kind=attach': 1 });
    // A hijacked session is on record as soon as it is allowed.
    expect(audit.records.map((r) => [r.event, r.action, r.status])).toEqual([['stream-open', 'container.attach', null]]);

    logs.status = 200;
    logs.bytesOut = 1000;
    attach.bytesIn = 6;
    attach.bytesOut = 6;
    await m.registry.metrics();
    // Not yet: bytes of open streams are folded in by createObservability's scrape hook.
    observer.flushOpenStreams();
    expect(await nonZero(m, 'dockward_stream_bytes_total')).toEqual({ 'direction=out,kind=logs': 1000, 'direction=in,kind=attach': 6, 'direction=out,kind=attach': 6 });

    logs.bytesOut = 1500;
    observer.streamClosed('response', logs);
    observer.finish(logs);
    attach.status = 101;
    observer.streamClosed('hijack', attach);
    observer.finish(attach);
    expect(await nonZero(m, 'dockward_active_streams')).toEqual({});
    expect(await nonZero(m, 'dockward_stream_bytes_total')).toEqual({ 'direction=out,kind=logs': 1500, 'direction=in,kind=attach': 6, 'direction=out,kind=attach': 6 });
    expect(audit.records.map((r) => [r.event, r.action, r.status, r.bytesOut])).toEqual([
      ['stream-open', 'container.attach', null, 0],
      ['request', 'container.logs', 200, 1500],
      ['stream-close', 'container.attach', 101, 6],
    ]);
  });

  it('folds the bytes of open streams in when Prometheus scrapes', async () => {
    const obs = createObservability({ audit: { file: '-' } }, { registry: new Registry(), defaultMetrics: false, audit: { stream: devNull() } });
    const c = ctx({ action: 'system.events', ...allow(), status: 200 });
    obs.observer.streamOpened('response', c);
    c.bytesOut = 4242;
    expect(await obs.metrics.registry.metrics()).toMatch(/^dockward_stream_bytes_total\{direction="out",kind="events"\} 4242$/m);
    await obs.close();
  });

  it('counts the inspected body the gateway relayed from its buffer', async () => {
    const { m, observer, audit } = setup();
    observer.finish(ctx({ action: 'container.create', method: 'POST', ...allow(), status: 201, body: Buffer.from('{"Image":"busybox"}') }));
    expect(await nonZero(m, 'dockward_stream_bytes_total')).toEqual({ 'direction=in,kind=request': 19 });
    expect(audit.records[0]!.bytesIn).toBe(19);
  });

  it('does not count client hang-ups as daemon errors', async () => {
    const { m, observer } = setup();
    observer.finish(ctx({ action: 'container.logs', ...allow(), upstreamError: 'client_closed' }));
    observer.finish(ctx({ action: 'container.list', identity: ALICE, decision: { effect: 'allow', rule: 'r', reason: '' }, upstreamError: 'ECONNREFUSED', rejection: { status: 502, code: 'upstream_unavailable', message: 'the Docker daemon is unreachable' } }));
    expect(await nonZero(m, 'dockward_upstream_errors_total')).toEqual({ 'kind=unreachable': 1 });
    expect(await nonZero(m, 'dockward_requests_total')).toEqual({ 'action=container.logs,code=200,decision=allow': 1, 'action=container.list,code=502,decision=allow': 1 });
  });

  it('follows the policy in force for the group label and the deny-rule series', async () => {
    const obs = createObservability({ audit: { file: '-' } }, { registry: new Registry(), defaultMetrics: false, audit: { stream: devNull() } });
    let current = compiled;
    obs.trackPolicy(() => current);
    expect(await values(obs.metrics, 'dockward_denials_total')).toEqual({ 'rule=default-deny': 0, 'rule=no-kill-for-ops': 0 });
    const next = compilePolicy([{ file: 'q.yaml', text: 'rules:\n  - name: qa-reads\n    effect: allow\n    subjects: ["group:qa"]\n    actions: [container.list]\n' }], { actions: ACTIONS });
    if (!next.policy) throw new Error(JSON.stringify(next.errors));
    current = next.policy;
    obs.observer.finish(ctx({ action: 'container.list', ...allow(), identity: { user: 'q', groups: ['qa', 'dev'], via: 'jwt' } }));
    expect(await nonZero(obs.metrics, 'dockward_group_requests_total')).toEqual({ 'decision=allow,group=qa': 1 });
    await obs.close();
  });
});

describe('policy reload gauges', () => {
  it('follow the reload counter, whoever increments it', async () => {
    const m = createMetrics(new Registry(), { defaultMetrics: false });
    const before = Date.now() / 1000;
    m.policyReloads.inc({ result: 'success' });
    expect((await values(m, 'dockward_policy_last_reload_successful'))['']).toBe(1);
    const t = (await values(m, 'dockward_policy_last_reload_success_timestamp_seconds'))['']!;
    expect(t).toBeGreaterThanOrEqual(Math.floor(before));
    m.policyReloads.inc({ result: 'error' });
    expect((await values(m, 'dockward_policy_last_reload_successful'))['']).toBe(0);
    // The time of the policy IN FORCE: a failed reload does not move it.
    expect((await values(m, 'dockward_policy_last_reload_success_timestamp_seconds'))['']).toBe(t);
    m.policyReloads.inc({ result: 'success' });
    expect((await values(m, 'dockward_policy_last_reload_successful'))['']).toBe(1);
    expect(await values(m, 'dockward_policy_reloads_total')).toEqual({ 'result=success': 2, 'result=error': 1 });
  });
});

describe('dockward_upstream_up and the health endpoints', () => {
  it('a check sets the gauge from each ping, and callers at the same moment share one ping', async () => {
    const m = createMetrics(new Registry(), { defaultMetrics: false });
    let answer = true;
    let pings = 0;
    const upstream = createUpstreamCheck(m, '/nonexistent.sock', {
      ping: async () => {
        pings++;
        await new Promise((r) => setTimeout(r, 5));
        return answer;
      },
    });
    await upstream.check();
    expect((await values(m, 'dockward_upstream_up'))['']).toBe(1);
    answer = false;
    await Promise.all([upstream.check(), upstream.check()]);
    expect((await values(m, 'dockward_upstream_up'))['']).toBe(0);
    expect(pings).toBe(2);
  });

  it('each scrape pings the daemon the metrics app was given, and only then', async () => {
    const sockDir = mkdtempSync(path.join(os.tmpdir(), 'dw-ping-'));
    const sock = path.join(sockDir, 'docker.sock');
    let pings = 0;
    const daemon = http.createServer((req, res) => {
      pings++;
      res.end(req.url === '/_ping' ? 'OK' : '');
    });
    await new Promise<void>((r) => daemon.listen(sock, r));
    const obs = createObservability({ audit: { file: '-' } }, { registry: new Registry(), defaultMetrics: false, audit: { stream: devNull() } });
    try {
      obs.metricsApp({ upstream: sock, policyReady: () => true });
      expect(pings).toBe(0);
      expect(await obs.metrics.registry.metrics()).toMatch(/^dockward_upstream_up 1$/m);
      expect(pings).toBe(1);
      daemon.close();
      daemon.closeAllConnections();
      rmSync(sock, { force: true });
      expect(await obs.metrics.registry.metrics()).toMatch(/^dockward_upstream_up 0$/m);
    } finally {
      daemon.close();
      await obs.close();
      rmSync(sockDir, { recursive: true, force: true });
    }
  });

  async function serve(app: http.RequestListener): Promise<{ get(p: string): Promise<{ status: number; body: string; type: string }>; close(): void }> {
    const server = http.createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    return {
      async get(p) {
        const r = await fetch(`http://127.0.0.1:${port}${p}`);
        return { status: r.status, body: await r.text(), type: r.headers.get('content-type') ?? '' };
      },
      close: () => server.close(),
    };
  }

  it.each([
    ['policies loaded, daemon answers', true, true, 200, 'ready', 1],
    ['daemon down', true, false, 503, 'not ready', 0],
    ['no policy in force', false, true, 503, 'not ready', 1],
  ])('/readyz: %s', async (_name, policies, upstream, status, text, up) => {
    const m = createMetrics(new Registry(), { defaultMetrics: false });
    const s = await serve(createMetricsApp({ metrics: m, policyLoaded: () => policies, upstream: createUpstreamCheck(m, 'unused', { ping: async () => upstream }) }));
    try {
      const r = await s.get('/readyz');
      expect(r.status).toBe(status);
      expect(JSON.parse(r.body)).toEqual({ status: text, policies, upstream });
      expect((await values(m, 'dockward_upstream_up'))['']).toBe(up);
      // Liveness does not depend on the daemon: restarting the gateway would not bring dockerd back.
      expect((await s.get('/healthz')).status).toBe(200);
    } finally {
      s.close();
    }
  });

  it('/metrics serves the text exposition; other paths are 404', async () => {
    const m = createMetrics(new Registry(), { defaultMetrics: false });
    const s = await serve(createMetricsApp({ metrics: m, policyLoaded: () => true, upstream: createUpstreamCheck(m, 'unused', { ping: async () => true }) }));
    try {
      const r = await s.get('/metrics');
      expect(r.status).toBe(200);
      expect(r.type).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(r.body).toMatch(/^dockward_upstream_up 0$/m);
      expect((await s.get('/debug/pprof')).status).toBe(404);
    } finally {
      s.close();
    }
  });
});

function devNull(): Writable {
  return new Writable({ write: (_chunk, _enc, cb) => cb() });
}
