/**
 * The exposition text after a scripted sequence of requests - allowed, denied, unauthenticated,
 * hijacked, streamed - through the real composition root (startGateway) in-process, against a
 * scripted unix-socket daemon whose answers are known to the byte. Checked against the exact
 * expected text; only what depends on the clock (bucket counts, sums, a timestamp) is left out.
 * The same with the real docker CLI, a real dockerd and a real Prometheus is
 * test/e2e/observability-prometheus.test.ts.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { startGateway, type RunningGateway } from '../../src/main.js';
import { DURATION_BUCKETS, OVERHEAD_BUCKETS } from '../../src/metrics/metrics.js';

const SECRET = 's'.repeat(64);
const dir = mkdtempSync(path.join(os.tmpdir(), 'dw-expo-'));
const sock = path.join(dir, 'docker.sock');
const auditFile = path.join(dir, 'audit.log');
const token = (sub: string, groups: string[], secret = SECRET) => jwt.sign({ sub, groups }, secret, { algorithm: 'HS256', expiresIn: 600 });
const ALICE = token('alice', ['dev']);
const BOB = token('bob', ['qa']);

let daemon: http.Server;
/** Ends the scripted `logs -f` stream. */
let endLogs: (() => void) | undefined;

function startDaemon(): Promise<void> {
  daemon = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/_ping') return void res.end('OK');
      if (req.url === '/v1.41/containers/json') {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        return void res.end('[]');
      }
      if (req.url?.startsWith('/v1.41/containers/abc/logs')) {
        res.writeHead(200, { 'Content-Type': 'application/vnd.docker.raw-stream' });
        res.write('line 1\n');
        endLogs = () => res.end('line 2\n');
        return;
      }
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end('{"message":"no such route in the scripted daemon"}');
    });
  });
  daemon.on('upgrade', (_req, socket: net.Socket) => {
    socket.write('HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
    socket.on('data', (c) => socket.write(c));
    socket.on('end', () => socket.end());
  });
  return new Promise((resolve) => daemon.listen(sock, resolve));
}

let gw: RunningGateway;
beforeAll(async () => {
  writeFileSync(path.join(dir, 'secret'), SECRET);
  writeFileSync(
    path.join(dir, 'policy.yaml'),
    `rules:
  - name: everyone-reads
    effect: allow
    subjects: ["*"]
    actions: [system.ping, container.list]
  - name: dev-attaches
    effect: allow
    subjects: ["group:dev"]
    actions: [container.attach, container.logs]
  - name: qa-may-not-kill
    effect: deny
    subjects: ["group:qa"]
    actions: [container.kill]
`,
  );
  writeFileSync(
    path.join(dir, 'dockward.yaml'),
    `listen: 127.0.0.1:0
upstream: unix://${sock}
auth: { jwt: { algorithms: [HS256], secretFile: ${dir}/secret } }
policies: [${dir}/policy.yaml]
metrics: { listen: 127.0.0.1:0 }
audit: { file: ${auditFile} }
`,
  );
  await startDaemon();
  gw = await startGateway(path.join(dir, 'dockward.yaml'), {}, createLogger('silent'));
});
afterAll(async () => {
  await gw?.stop(0);
  daemon?.closeAllConnections();
  await new Promise((r) => daemon?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

function hostPort(hp: string): { host: string; port: number } {
  const i = hp.lastIndexOf(':');
  return { host: hp.slice(0, i), port: Number(hp.slice(i + 1)) };
}

function request(method: string, p: string, tok?: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ ...hostPort(gw.listen), method, path: p, headers: { ...(tok ? { Authorization: `Bearer ${tok}` } : {}), ...headers } }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Like the docker CLI's attach: upgrade, send `input` after the 101, half-close, read to the end. */
function attach(p: string, tok: string, input: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ ...hostPort(gw.listen), allowHalfOpen: true }, () => {
      s.write(`POST ${p} HTTP/1.1\r\nHost: docker\r\nAuthorization: Bearer ${tok}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n`);
    });
    let got = '';
    s.on('data', (c) => {
      got += c;
      if (got.includes('\r\n\r\n') && input) {
        s.end(input);
        input = '';
      }
    });
    s.on('end', () => resolve(got));
    s.on('error', reject);
  });
}

async function scrape(): Promise<string> {
  const r = await fetch(`http://${gw.metricsListen}/metrics`);
  expect(r.status).toBe(200);
  return r.text();
}

/** dockward_* lines without what depends on the clock: bucket counts, sums, the load timestamp. */
function stable(text: string): string {
  return text
    .split('\n')
    .filter((l) => /^(# (HELP|TYPE) )?dockward_/.test(l))
    .filter((l) => !/^dockward_\w+_(bucket|sum)\{/.test(l))
    .map((l) => l.replace(/^(dockward_policy_last_reload_success_timestamp_seconds) \d+(\.\d+)?$/, '$1 <time>'))
    .join('\n');
}

describe('the exposition after a scripted sequence of requests', () => {
  it('counts exactly what happened, with bounded labels', async () => {
    // Allowed, twice.
    expect((await request('GET', '/v1.41/containers/json', ALICE)).body).toBe('[]');
    expect((await request('GET', '/v1.41/containers/json', ALICE)).status).toBe(200);
    // Denied by a deny rule, and by the default deny.
    expect(await request('POST', '/v1.41/containers/abc/kill?signal=KILL', BOB)).toMatchObject({ status: 403, body: expect.stringContaining('denied by rule qa-may-not-kill') });
    expect(await request('POST', '/v1.41/containers/abc/stop', BOB)).toMatchObject({ status: 403, body: expect.stringContaining('denied by rule default-deny') });
    // Unauthenticated: no token, and a token signed with another key.
    expect((await request('GET', '/v1.41/containers/json')).status).toBe(401);
    expect((await request('GET', '/v1.41/containers/json', token('mallory', ['dev'], 'x'.repeat(64)))).status).toBe(401);
    // Hijacked: 6 bytes each way.
    expect(await attach('/v1.41/containers/abc/attach?stream=1&stdin=1&stdout=1', ALICE, 'hello\n')).toMatch(/^HTTP\/1\.1 101 UPGRADED\r\n[^]*\r\n\r\nhello\n$/);

    // Streamed: while `logs -f` is open, it is counted, and so are the bytes it has relayed so far.
    let logsBody = '';
    const logsDone = new Promise<number>((resolve, reject) => {
      const req = http.request({ ...hostPort(gw.listen), method: 'GET', path: '/v1.41/containers/abc/logs?follow=1&stdout=1', headers: { Authorization: `Bearer ${ALICE}` } }, (res) => {
        res.on('data', (c) => (logsBody += c));
        res.on('end', () => resolve(res.statusCode!));
      });
      req.on('error', reject);
      req.end();
    });
    const until = Date.now() + 10_000;
    while (!logsBody.includes('line 1') && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    const during = await scrape();
    expect(during).toMatch(/^dockward_active_streams\{kind="logs"\} 1$/m);
    expect(during).toMatch(/^dockward_stream_bytes_total\{direction="out",kind="logs"\} 7$/m);
    endLogs!();
    expect(await logsDone).toBe(200);
    expect(logsBody).toBe('line 1\nline 2\n');

    const text = await scrape();
    expect(stable(text)).toBe(EXPECTED);

    // Histograms: every series has the documented buckets, and +Inf equals the count.
    for (const [name, buckets] of [['dockward_request_duration_seconds', DURATION_BUCKETS], ['dockward_gateway_overhead_seconds', OVERHEAD_BUCKETS], ['dockward_upstream_duration_seconds', DURATION_BUCKETS]] as const) {
      const les = [...text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)",action="container.list"\\}`, 'gm'))].map((m) => m[1]);
      expect(les).toEqual([...buckets.map(String), '+Inf']);
      const inf = new RegExp(`^${name}_bucket\\{le="\\+Inf",action="container.list"\\} (\\d+)$`, 'm').exec(text)?.[1];
      const count = new RegExp(`^${name}_count\\{action="container.list"\\} (\\d+)$`, 'm').exec(text)?.[1];
      expect(inf).toBe(count);
    }
    // The Node defaults are there too.
    expect(text).toMatch(/^process_cpu_seconds_total \d/m);
    expect(text).toMatch(/^nodejs_eventloop_lag_p99_seconds \d/m);
  });

  it('wrote one audit record per decision, plus the end of the attach session, and no token', async () => {
    // Records are written in batches (up to 100 ms after their request ended): wait for the last.
    let text = readFileSync(auditFile, 'utf8');
    for (const until = Date.now() + 5_000; !text.includes('"container.logs"') && Date.now() < until; text = readFileSync(auditFile, 'utf8')) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const records = text.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.map((r) => [r.event, r.action, r.decision, r.rule, r.status])).toEqual([
      ['request', 'container.list', 'allow', 'everyone-reads', 200],
      ['request', 'container.list', 'allow', 'everyone-reads', 200],
      ['request', 'container.kill', 'deny', 'qa-may-not-kill', 403],
      ['request', 'container.stop', 'deny', 'default-deny', 403],
      ['request', 'unclassified', 'unauthenticated', null, 401],
      ['request', 'unclassified', 'unauthenticated', null, 401],
      ['stream-open', 'container.attach', 'allow', 'dev-attaches', null],
      ['stream-close', 'container.attach', 'allow', 'dev-attaches', 101],
      ['request', 'container.logs', 'allow', 'dev-attaches', 200],
    ]);
    expect(records[7]).toMatchObject({ requestId: records[6]!.requestId, bytesIn: 6, bytesOut: 6, subject: { user: 'alice', groups: ['dev'], via: 'jwt' }, target: 'abc' });
    expect(records[8]).toMatchObject({ bytesOut: 14, path: '/containers/abc/logs' });
    for (const t of [ALICE, BOB, SECRET]) expect(text).not.toContain(t);
    expect(text).not.toContain('eyJ');
  });
});

const EXPECTED = `# HELP dockward_requests_total Requests by action, decision and the status code the client got.
# TYPE dockward_requests_total counter
dockward_requests_total{action="container.list",decision="allow",code="200"} 2
dockward_requests_total{action="container.kill",decision="deny",code="403"} 1
dockward_requests_total{action="container.stop",decision="deny",code="403"} 1
dockward_requests_total{action="unclassified",decision="unauthenticated",code="401"} 2
dockward_requests_total{action="container.attach",decision="allow",code="101"} 1
dockward_requests_total{action="container.logs",decision="allow",code="200"} 1
# HELP dockward_request_duration_seconds From the request head to the end of the response, by action (streams and sessions count until they end).
# TYPE dockward_request_duration_seconds histogram
dockward_request_duration_seconds_count{action="container.list"} 2
dockward_request_duration_seconds_count{action="container.kill"} 1
dockward_request_duration_seconds_count{action="container.stop"} 1
dockward_request_duration_seconds_count{action="unclassified"} 2
dockward_request_duration_seconds_count{action="container.attach"} 1
dockward_request_duration_seconds_count{action="container.logs"} 1
# HELP dockward_gateway_overhead_seconds The gateway's own time per request: from the request head to the hand-off to the daemon (authenticate, classify, inspect, authorize), or to its own refusal.
# TYPE dockward_gateway_overhead_seconds histogram
dockward_gateway_overhead_seconds_count{action="container.list"} 2
dockward_gateway_overhead_seconds_count{action="container.kill"} 1
dockward_gateway_overhead_seconds_count{action="container.stop"} 1
dockward_gateway_overhead_seconds_count{action="unclassified"} 2
dockward_gateway_overhead_seconds_count{action="container.attach"} 1
dockward_gateway_overhead_seconds_count{action="container.logs"} 1
# HELP dockward_upstream_duration_seconds The daemon's time for forwarded requests: from the hand-off to the end of its answer (streams and sessions count until they end).
# TYPE dockward_upstream_duration_seconds histogram
dockward_upstream_duration_seconds_count{action="container.list"} 2
dockward_upstream_duration_seconds_count{action="container.attach"} 1
dockward_upstream_duration_seconds_count{action="container.logs"} 1
# HELP dockward_denials_total Denied requests by the rule that decided (default-deny when no rule allowed).
# TYPE dockward_denials_total counter
dockward_denials_total{rule="default-deny"} 1
dockward_denials_total{rule="qa-may-not-kill"} 1
# HELP dockward_decisions_total Policy decisions by the deciding rule and its effect.
# TYPE dockward_decisions_total counter
dockward_decisions_total{rule="everyone-reads",effect="allow"} 2
dockward_decisions_total{rule="qa-may-not-kill",effect="deny"} 1
dockward_decisions_total{rule="default-deny",effect="deny"} 1
dockward_decisions_total{rule="dev-attaches",effect="allow"} 2
# HELP dockward_group_requests_total Authenticated requests by caller group and decision; a request counts once for each of its groups that the policies name, callers in none of them under group="(none)".
# TYPE dockward_group_requests_total counter
dockward_group_requests_total{group="dev",decision="allow"} 4
dockward_group_requests_total{group="qa",decision="deny"} 2
# HELP dockward_auth_failures_total Requests refused as unauthenticated, by reason.
# TYPE dockward_auth_failures_total counter
dockward_auth_failures_total{reason="missing"} 1
dockward_auth_failures_total{reason="malformed"} 0
dockward_auth_failures_total{reason="algorithm"} 0
dockward_auth_failures_total{reason="signature"} 1
dockward_auth_failures_total{reason="expired"} 0
dockward_auth_failures_total{reason="not_yet_valid"} 0
dockward_auth_failures_total{reason="issuer"} 0
dockward_auth_failures_total{reason="audience"} 0
dockward_auth_failures_total{reason="claims"} 0
dockward_auth_failures_total{reason="key"} 0
dockward_auth_failures_total{reason="certificate"} 0
# HELP dockward_upstream_errors_total Failures talking to the daemon, by kind.
# TYPE dockward_upstream_errors_total counter
dockward_upstream_errors_total{kind="unreachable"} 0
dockward_upstream_errors_total{kind="reset"} 0
dockward_upstream_errors_total{kind="timeout"} 0
dockward_upstream_errors_total{kind="permission"} 0
dockward_upstream_errors_total{kind="other"} 0
# HELP dockward_upstream_up Whether the daemon answers GET /_ping (1) or not (0), checked at each scrape and each /readyz.
# TYPE dockward_upstream_up gauge
dockward_upstream_up 1
# HELP dockward_active_streams Open exchanges with the daemon by kind: attach/exec/buildkit sessions, logs/events/stats streams, wait, and finite requests in flight.
# TYPE dockward_active_streams gauge
dockward_active_streams{kind="attach"} 0
dockward_active_streams{kind="exec"} 0
dockward_active_streams{kind="buildkit"} 0
dockward_active_streams{kind="logs"} 0
dockward_active_streams{kind="events"} 0
dockward_active_streams{kind="stats"} 0
dockward_active_streams{kind="wait"} 0
dockward_active_streams{kind="request"} 0
# HELP dockward_stream_bytes_total Bytes relayed, by direction (in: client to daemon, out: daemon to client) and kind; open streams are counted as they flow.
# TYPE dockward_stream_bytes_total counter
dockward_stream_bytes_total{direction="in",kind="attach"} 6
dockward_stream_bytes_total{direction="out",kind="attach"} 6
dockward_stream_bytes_total{direction="in",kind="exec"} 0
dockward_stream_bytes_total{direction="out",kind="exec"} 0
dockward_stream_bytes_total{direction="in",kind="buildkit"} 0
dockward_stream_bytes_total{direction="out",kind="buildkit"} 0
dockward_stream_bytes_total{direction="in",kind="logs"} 0
dockward_stream_bytes_total{direction="out",kind="logs"} 14
dockward_stream_bytes_total{direction="in",kind="events"} 0
dockward_stream_bytes_total{direction="out",kind="events"} 0
dockward_stream_bytes_total{direction="in",kind="stats"} 0
dockward_stream_bytes_total{direction="out",kind="stats"} 0
dockward_stream_bytes_total{direction="in",kind="wait"} 0
dockward_stream_bytes_total{direction="out",kind="wait"} 0
dockward_stream_bytes_total{direction="in",kind="request"} 0
dockward_stream_bytes_total{direction="out",kind="request"} 4
# HELP dockward_audit_dropped_total Audit records dropped: backlog (the sink could not keep up) or error (the sink failed).
# TYPE dockward_audit_dropped_total counter
dockward_audit_dropped_total{reason="backlog"} 0
dockward_audit_dropped_total{reason="error"} 0
# HELP dockward_policy_reloads_total Policy loads (start-up and reloads) by result.
# TYPE dockward_policy_reloads_total counter
dockward_policy_reloads_total{result="success"} 1
dockward_policy_reloads_total{result="error"} 0
# HELP dockward_policy_rules Rules in the policy in force.
# TYPE dockward_policy_rules gauge
dockward_policy_rules 3
# HELP dockward_policy_last_reload_successful Whether the last policy load succeeded (1) or failed and the previous policy stayed in force (0).
# TYPE dockward_policy_last_reload_successful gauge
dockward_policy_last_reload_successful 1
# HELP dockward_policy_last_reload_success_timestamp_seconds When the policy in force was loaded (Unix time).
# TYPE dockward_policy_last_reload_success_timestamp_seconds gauge
dockward_policy_last_reload_success_timestamp_seconds <time>`;
