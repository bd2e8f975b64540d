#!/usr/bin/env node
/**
 * dockward's benchmark (issue 7): `npm run bench [-- flags]`.
 *
 * Starts its own gateway (as a user runs it: `node dist/src/cli/main.js serve`, JWT auth, audit
 * to a file, a permissive policy) in front of the private test dockerd, and measures the gateway
 * against the daemon's unix socket in ONE run, the targets interleaved round by round (and their
 * order rotated each round) so that the drift of a shared machine hits both alike. Prints a
 * Markdown table of absolute figures, ratios to the direct socket, the per-round spread of the
 * ratios, the issue's targets and a verdict; writes it to docs/performance.md.
 *
 * Flags:
 *   --quick               short rounds and small transfers: a smoke run (numbers are not comparable)
 *   --rounds N            rounds of the interleaved phases (default 5, quick 2)
 *   --only a,b            phases: ping1 ping32 ping list export upload lifecycle rss streams policy
 *   --peers               also HAProxy with ../shared/bench-peers/haproxy-tecnativa.cfg, when installed,
 *                         and bench/byte-relay.ts (a Node byte relay with no checks: what one more
 *                         hop costs on this machine)
 *   --profile             instead: run the gateway under `node --cpu-prof` during one load phase
 *                         and print the top self-time functions (npm run bench:profile)
 *   --profile-phase P     ping32 (default), ping1, list, export, upload
 *   --profile-seconds S   length of the profiled phase (default 6, quick 2)
 *   --client http|raw     load generator for the ping and list phases: node:http with a keep-alive
 *                         Agent (default: the client the issue's targets were calibrated with -
 *                         direct socket ~285 µs p50, ~9,000 req/s) or raw (~20 µs CPU per request:
 *                         the direct socket runs 3-4x faster, which makes every ratio harsher)
 *   --upstream-client C   the gateway's upstreamClient: direct, http-proxy or relay (default: the
 *                         configuration's default)
 *   --json FILE           also write the raw results as JSON
 *   --write / --no-write  write docs/performance.md (default: only for a complete, non-quick run)
 *   --keep                keep the temp dir (gateway config, audit log, profiles)
 *
 * Only loopback and the daemon's unix socket are contacted. Every loop is bounded in time and
 * count, the whole run by a watchdog; containers are labelled dockward.bench=<run id> and removed.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { callJson, type Endpoint } from './client.js';
import { Containers, LABEL_KEY, leaseDaemon, tarBuffer, tarPieces, type Daemon } from './docker.js';
import { haproxyBinary, haproxyVersion, startByteRelay, startDockward, startHaproxy, type Proc } from './gateway.js';
import { channels, closedLoop, download, lifecycle, openLogStreams, sequential, sleep, uploadBuffer, uploadStream, type ClientKind, type LoopResult, type TransferResult } from './load.js';
import { benchPolicy, type PolicyResult } from './policy.js';
import { cpuModel, CpuWindow, machineCpu, memory, PeakMeter, settleDisk, type CpuUsed } from './proc.js';
import { formatSummary, summarise, type CpuProfile } from './profile.js';
import { renderReport, verdict, writeDoc, type Report, type Row } from './report.js';
import { median, minMax, percentile, sum } from './stats.js';

// dist/bench/run.js -> repository root.
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const PEER_CFG = path.resolve(REPO_ROOT, '..', 'shared', 'bench-peers', 'haproxy-tecnativa.cfg');
const DOC = path.join(REPO_ROOT, 'docs', 'performance.md');
const MB = 1e6;
const MIB = 1024 * 1024;

const PHASES = ['ping1', 'ping32', 'list', 'export', 'upload', 'lifecycle', 'rss', 'streams', 'policy'] as const;
/** How long the streams phase measures the proxy's CPU while its streams are open and idle: /proc counts CPU in 10 ms units, so 2.5 ms per second is the resolution. */
const IDLE_CPU_MS = 4_000;
type Phase = (typeof PHASES)[number];

interface Settings {
  readonly quick: boolean;
  readonly rounds: number;
  readonly ping1Count: number;
  readonly ping1MaxMs: number;
  readonly loopWarmupMs: number;
  readonly ping32Ms: number;
  readonly listMs: number;
  readonly listContainers: number;
  readonly exportBytes: number;
  readonly uploadBytes: number;
  readonly lifecycleCycles: number;
  readonly rssBytes: number;
  readonly streams: number;
  readonly policyRules: number;
  readonly policyBatches: number;
  readonly policyBatchMs: number;
  readonly budgetMs: number;
}

function settings(quick: boolean, rounds: number | undefined): Settings {
  if (quick) {
    return {
      quick, rounds: rounds ?? 2, ping1Count: 400, ping1MaxMs: 1_500, loopWarmupMs: 200, ping32Ms: 1_000, listMs: 800,
      listContainers: 50, exportBytes: 64 * MIB, uploadBytes: 32 * MIB, lifecycleCycles: 2, rssBytes: 256 * MIB,
      streams: 500, policyRules: 1_000, policyBatches: 3, policyBatchMs: 100, budgetMs: 6 * 60_000,
    };
  }
  return {
    quick, rounds: rounds ?? 5, ping1Count: 2_000, ping1MaxMs: 4_000, loopWarmupMs: 500, ping32Ms: 3_000, listMs: 2_000,
    listContainers: 50, exportBytes: 200 * MIB, uploadBytes: 100 * MIB, lifecycleCycles: 4, rssBytes: 1024 * MIB,
    streams: 500, policyRules: 1_000, policyBatches: 7, policyBatchMs: 200, budgetMs: 14 * 60_000,
  };
}

interface Args {
  s: Settings;
  only: Set<Phase>;
  complete: boolean;
  peers: boolean;
  profile: boolean;
  profilePhase: 'ping1' | 'ping32' | 'list' | 'export' | 'upload';
  profileSeconds: number;
  client: ClientKind;
  upstreamClient?: string;
  json?: string;
  write: boolean;
  keep: boolean;
}

function usage(): string {
  const text = readFileSync(fileURLToPath(import.meta.url), 'utf8');
  const m = /Flags:\n([\s\S]*?)\n \*\n/.exec(text);
  return `usage: npm run bench -- [flags]\n${(m?.[1] ?? '').replace(/^ \* ?/gm, '')}`;
}

function parse(argv: string[]): Args {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      only: { type: 'string' },
      peers: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      'profile-phase': { type: 'string', default: 'ping32' },
      'profile-seconds': { type: 'string' },
      client: { type: 'string', default: 'http' },
      'upstream-client': { type: 'string' },
      json: { type: 'string' },
      write: { type: 'boolean' },
      'no-write': { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(usage() + '\n');
    process.exit(0);
  }
  let rounds: number | undefined;
  if (values.rounds !== undefined) {
    rounds = Number(values.rounds);
    if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) throw new Error(`--rounds must be an integer 1-50, got ${values.rounds}`);
  }
  const only = new Set<Phase>();
  if (values.only) {
    for (const p of values.only.split(',').map((x) => x.trim()).filter(Boolean)) {
      if (p === 'ping') {
        only.add('ping1').add('ping32');
      } else if ((PHASES as readonly string[]).includes(p)) {
        only.add(p as Phase);
      } else {
        throw new Error(`--only: unknown phase ${JSON.stringify(p)} (phases: ping, ${PHASES.join(', ')})`);
      }
    }
  } else {
    for (const p of PHASES) only.add(p);
  }
  const profilePhase = values['profile-phase']!;
  if (!['ping1', 'ping32', 'list', 'export', 'upload'].includes(profilePhase)) throw new Error(`--profile-phase must be ping1, ping32, list, export or upload`);
  const s = settings(values.quick!, rounds);
  const profileSeconds = values['profile-seconds'] !== undefined ? Number(values['profile-seconds']) : s.quick ? 2 : 6;
  if (!(profileSeconds > 0 && profileSeconds <= 120)) throw new Error('--profile-seconds must be in (0, 120]');
  const complete = values.only === undefined;
  if (values.client !== 'raw' && values.client !== 'http') throw new Error(`--client must be raw or http, got ${values.client}`);
  const upstreamClient = values['upstream-client'];
  if (upstreamClient !== undefined && !['direct', 'http-proxy', 'relay'].includes(upstreamClient)) throw new Error(`--upstream-client must be direct, http-proxy or relay, got ${upstreamClient}`);
  return {
    client: values.client,
    upstreamClient,
    s,
    only,
    complete,
    peers: values.peers!,
    profile: values.profile!,
    profilePhase: profilePhase as Args['profilePhase'],
    profileSeconds,
    json: values.json,
    write: values['no-write'] ? false : (values.write ?? (complete && !s.quick && !values.profile)),
    keep: values.keep!,
  };
}

function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

function git(args: string[]): string | undefined {
  try {
    return execFileSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

function rotate<T>(xs: readonly T[], by: number): T[] {
  const k = by % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

// ---------------------------------------------------------------------------------------------
// Clean-up, whatever happens.

const cleanups: (() => Promise<void> | void)[] = [];
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const f of cleanups.reverse()) {
      try {
        await f();
      } catch (e) {
        log(`clean-up step failed: ${(e as Error).message}`);
      }
    }
  })();
  return cleaning;
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`${sig}: cleaning up`);
    void cleanup().then(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------
// The run.

interface PerRound {
  ping1?: LoopResult;
  ping32?: LoopResult;
  list?: LoopResult;
  export?: TransferResult;
  upload?: TransferResult;
  lifecycle?: number[];
}

interface Peaks {
  export?: { peak: number; exact: boolean; mbps: number; bytes: number };
  upload?: { peak: number; exact: boolean; mbps: number; bytes: number };
  streams?: { open: number; failed: number; firstError?: string; peak: number; exact: boolean; rssOpen: number; rssAfter: number; idleCpuMsPerS?: number };
}

interface Results {
  rounds: Record<string, PerRound[]>;
  rssAfterRound: Record<string, number[]>;
  peaks: Record<string, Peaks>;
  rssFinal: Record<string, number>;
  /** RSS of each proxy right after start-up, before any load. */
  rssStart: Record<string, number>;
  policy?: PolicyResult;
  errors: string[];
}

interface Env {
  daemon: Daemon;
  direct: Endpoint;
  gateway: Proc;
  peers: Proc[];
  containers: Containers;
  runId: string;
  dir: string;
}

async function setUp(a: Args): Promise<Env> {
  const runId = randomBytes(4).toString('hex');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dockward-bench-'));
  cleanups.push(() => {
    if (a.keep) log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  });
  log('leasing the private test dockerd (scripts/dockerd-test.sh)');
  const daemon = await leaseDaemon(REPO_ROOT);
  cleanups.push(() => daemon.release());
  const direct: Endpoint = { name: 'direct', address: { kind: 'unix', path: daemon.sock }, headerLines: '' };
  const containers = new Containers(direct, runId);
  cleanups.push(async () => {
    const n = await containers.removeAll();
    if (n > 0) log(`removed ${n} bench container(s)`);
  });
  const gwDir = path.join(dir, 'dockward');
  mkdirSync(gwDir);
  const nodeFlags = a.profile ? ['--cpu-prof', `--cpu-prof-dir=${path.join(dir, 'profile')}`, '--cpu-prof-interval', '200'] : [];
  log(`starting the gateway${a.profile ? ' under --cpu-prof' : ''}`);
  const gateway = await startDockward({ repoRoot: REPO_ROOT, dir: gwDir, upstreamSock: daemon.sock, nodeFlags, upstreamClient: a.upstreamClient });
  cleanups.push(() => gateway.stop());
  const peers: Proc[] = [];
  if (a.peers && !a.profile) {
    const bin = haproxyBinary();
    if (!bin) log('--peers: haproxy is not installed (apt-get install haproxy); running without it');
    else if (!existsSync(PEER_CFG)) log(`--peers: ${PEER_CFG} does not exist; running without haproxy`);
    else {
      const hDir = path.join(dir, 'haproxy');
      mkdirSync(hDir);
      const h = await startHaproxy(bin, PEER_CFG, hDir, daemon.sock);
      cleanups.push(() => h.stop());
      peers.push(h);
      log(`haproxy ${haproxyVersion(bin)} on ${h.endpoint.address.kind === 'tcp' ? h.endpoint.address.port : ''}`);
    }
    const relay = await startByteRelay(REPO_ROOT, daemon.sock);
    cleanups.push(() => relay.stop());
    peers.push(relay);
    log(`byte relay on ${relay.endpoint.address.kind === 'tcp' ? relay.endpoint.address.port : ''}`);
  }
  return { daemon, direct, gateway, peers, containers, runId, dir };
}

interface Fixtures {
  listPath?: string;
  exportId?: string;
  uploadId?: string;
  uploadBody?: Buffer;
  createBody?: unknown;
}

async function fixtures(a: Args, env: Env, need: (p: Phase) => boolean): Promise<Fixtures> {
  const f: Fixtures = {};
  const c = env.containers;
  if (need('list')) {
    log(`creating ${a.s.listContainers} containers for the list phase`);
    const key = `${LABEL_KEY}.list`;
    for (let i = 0; i < a.s.listContainers; i += 5) {
      await Promise.all(Array.from({ length: Math.min(5, a.s.listContainers - i) }, () => c.create({ cmd: ['true'], labels: { [key]: env.runId } })));
    }
    // A label filter keeps the answer at exactly these containers, whatever other test runs
    // leave on the shared daemon meanwhile (the list would otherwise change between rounds).
    f.listPath = `/containers/json?all=1&filters=${encodeURIComponent(JSON.stringify({ label: [`${key}=${env.runId}`] }))}`;
    const listed = await callJson<unknown[]>(env.direct, 'GET', f.listPath);
    if (listed.length !== a.s.listContainers) throw new Error(`the list fixture lists ${listed.length} containers, expected ${a.s.listContainers}`);
  }
  if (need('export')) {
    const mib = Math.round(a.s.exportBytes / MIB);
    log(`filling a ${mib} MiB container file system for the export phase`);
    f.exportId = await c.runToExit({ cmd: ['dd', 'if=/dev/zero', 'of=/fill', 'bs=1048576', `count=${mib}`] }, 300_000);
  }
  if (need('upload')) {
    f.uploadId = await c.create({ cmd: ['true'] });
    f.uploadBody = tarBuffer('bench-upload.bin', a.s.uploadBytes, Buffer.alloc(MIB, 0x5a));
  }
  if (need('lifecycle')) f.createBody = c.createBody({ cmd: ['true'] });
  return f;
}

function ok(r: { errors: number; firstError?: string; count: number }, what: string, errors: string[]): void {
  if (r.errors > 0) errors.push(`${what}: ${r.errors} failed request(s), first: ${r.firstError}`);
  if (r.count === 0) errors.push(`${what}: no request completed`);
}

function transferOk(r: TransferResult, what: string, min: number, errors: string[]): void {
  if (r.status < 200 || r.status > 299) errors.push(`${what}: HTTP ${r.status}`);
  else if (r.bytes < min) errors.push(`${what}: only ${r.bytes} bytes`);
}

async function runRounds(a: Args, env: Env, fx: Fixtures, res: Results, need: (p: Phase) => boolean): Promise<void> {
  const endpoints = [env.direct, env.gateway.endpoint, ...env.peers.map((p) => p.endpoint)];
  const dp = env.daemon.pids;
  const s = a.s;
  const roundPhases = (['ping1', 'ping32', 'list', 'export', 'upload', 'lifecycle'] as const).filter(need);
  if (roundPhases.length === 0) return;
  for (const ep of endpoints) res.rounds[ep.name] = [];
  for (let round = 0; round < s.rounds; round++) {
    const order = rotate(endpoints, round);
    const data = new Map<string, PerRound>(endpoints.map((e) => [e.name, {}]));
    for (const phase of roundPhases) {
      log(`round ${round + 1}/${s.rounds}: ${phase} (${order.map((e) => e.name).join(', ')})`);
      for (const ep of order) {
        const d = data.get(ep.name)!;
        const what = `round ${round + 1} ${phase} ${ep.name}`;
        switch (phase) {
          case 'ping1':
            d.ping1 = await sequential(channels(a.client, ep, 'GET', '/_ping', 1), ep.pid, { count: s.ping1Count, warmup: 100, maxMs: s.ping1MaxMs, daemonPids: dp });
            ok(d.ping1, what, res.errors);
            break;
          case 'ping32':
            d.ping32 = await closedLoop(channels(a.client, ep, 'GET', '/_ping', 32), ep.pid, {
              concurrency: 32, warmupMs: s.loopWarmupMs, durationMs: s.ping32Ms, recordLatency: false, maxRequests: 1_000_000, daemonPids: dp,
            });
            ok(d.ping32, what, res.errors);
            break;
          case 'list':
            d.list = await closedLoop(channels(a.client, ep, 'GET', fx.listPath!, 8), ep.pid, {
              concurrency: 8, warmupMs: s.loopWarmupMs, durationMs: s.listMs, recordLatency: true, maxRequests: 200_000, daemonPids: dp,
            });
            ok(d.list, what, res.errors);
            break;
          case 'export':
            settleDisk();
            d.export = await download(ep, `/containers/${fx.exportId}/export`, { timeoutMs: 120_000, daemonPids: dp });
            transferOk(d.export, what, s.exportBytes, res.errors);
            break;
          case 'upload':
            settleDisk();
            d.upload = await uploadBuffer(ep, `/containers/${fx.uploadId}/archive?path=/tmp`, fx.uploadBody!, { timeoutMs: 120_000, daemonPids: dp });
            transferOk(d.upload, what, s.uploadBytes, res.errors);
            break;
          case 'lifecycle':
            try {
              d.lifecycle = await lifecycle(ep, fx.createBody, { cycles: s.lifecycleCycles, maxMs: 120_000 });
            } catch (e) {
              res.errors.push(`${what}: ${(e as Error).message}`);
            }
            break;
        }
      }
    }
    for (const ep of endpoints) res.rounds[ep.name]!.push(data.get(ep.name)!);
    // Memory after each round: a gateway that keeps something per request grows here.
    await sleep(500);
    for (const ep of endpoints) {
      if (ep.pid === undefined) continue;
      const m = memory(ep.pid);
      if (m) (res.rssAfterRound[ep.name] ??= []).push(m.rss);
    }
  }
}

async function runPeaks(a: Args, env: Env, res: Results, need: (p: Phase) => boolean): Promise<void> {
  const proxies = [env.gateway, ...env.peers];
  const dp = env.daemon.pids;
  const c = env.containers;
  if (need('rss')) {
    const mib = Math.round(a.s.rssBytes / MIB);
    log(`peak RSS: filling a ${mib} MiB container file system`);
    const bigId = await c.runToExit({ cmd: ['dd', 'if=/dev/zero', 'of=/fill', 'bs=1048576', `count=${mib}`] }, 600_000);
    const sinkId = await c.create({ cmd: ['true'] });
    const pieces = tarPieces('bench-big.bin', a.s.rssBytes);
    const fill = Buffer.alloc(MIB, 0x5a);
    for (const p of proxies) {
      const name = p.endpoint.name;
      const peaks = (res.peaks[name] ??= {});
      log(`peak RSS: ${mib} MiB export through ${name}`);
      let meter = new PeakMeter(p.pid);
      const ex = await download(p.endpoint, `/containers/${bigId}/export`, { timeoutMs: 300_000, daemonPids: dp });
      let pk = meter.stop();
      transferOk(ex, `peak RSS export ${name}`, a.s.rssBytes, res.errors);
      peaks.export = { ...pk, mbps: ex.bytes / MB / ex.seconds, bytes: ex.bytes };
      log(`peak RSS: ${mib} MiB upload through ${name}`);
      meter = new PeakMeter(p.pid);
      const up = await uploadStream(p.endpoint, `/containers/${sinkId}/archive?path=/tmp`, pieces, fill, { timeoutMs: 300_000, daemonPids: dp });
      pk = meter.stop();
      transferOk(up, `peak RSS upload ${name}`, a.s.rssBytes, res.errors);
      peaks.upload = { ...pk, mbps: up.bytes / MB / up.seconds, bytes: up.bytes };
    }
    // Give the disk back at once.
    await c.remove(bigId);
    await c.remove(sinkId);
  }
  if (need('streams')) {
    const id = await c.create({ cmd: ['sh', '-c', 'echo ready; exec sleep 3600'] });
    await c.start(id);
    await sleep(300);
    for (const p of proxies) {
      const name = p.endpoint.name;
      const peaks = (res.peaks[name] ??= {});
      log(`${a.s.streams} idle logs -f streams through ${name}`);
      const meter = new PeakMeter(p.pid);
      const st = await openLogStreams(p.endpoint, id, a.s.streams, 30_000);
      await sleep(1_000);
      // What the open streams cost while nothing flows: timers and wake-ups only.
      const idle = new CpuWindow(p.pid, []);
      await sleep(IDLE_CPU_MS);
      const used = idle.end();
      const idleCpuMsPerS = (used.proxy * 1000) / used.wall;
      const rssOpen = memory(p.pid)?.rss ?? NaN;
      const pk = meter.stop();
      st.close();
      await sleep(1_500);
      const rssAfter = memory(p.pid)?.rss ?? NaN;
      if (st.failed > 0) res.errors.push(`streams ${name}: ${st.failed} of ${a.s.streams} failed, first: ${st.firstError}`);
      peaks.streams = { open: st.open, failed: st.failed, firstError: st.firstError, ...pk, rssOpen, rssAfter, idleCpuMsPerS };
    }
    await c.remove(id);
  }
  for (const p of proxies) {
    const m = memory(p.pid);
    if (m) res.rssFinal[p.endpoint.name] = m.rss;
  }
}

// ---------------------------------------------------------------------------------------------
// The report.

function build(a: Args, env: Env | undefined, res: Results, context: string[], elapsedMs: number): Report {
  const names = env ? ['direct', env.gateway.endpoint.name, ...env.peers.map((p) => p.endpoint.name)] : ['direct', 'dockward'];
  const proxies = names.slice(1);
  const rows: Row[] = [];
  const per = (name: string) => res.rounds[name] ?? [];
  const has = (k: keyof PerRound) => per('direct').some((r) => r[k] !== undefined);
  const values = (f: (name: string) => number | undefined) => Object.fromEntries(names.map((n) => [n, f(n)]));
  const roundRatios = (f: (r: PerRound) => number | undefined) =>
    Object.fromEntries(
      proxies.map((p) => [
        p,
        per(p).map((r, i) => {
          const d = per('direct')[i];
          const x = f(r);
          const y = d ? f(d) : undefined;
          return x !== undefined && y !== undefined && y !== 0 ? x / y : NaN;
        }),
      ]),
    );
  const medianOf = (name: string, f: (r: PerRound) => number | undefined) => {
    const xs = per(name).map(f).filter((x): x is number => x !== undefined && Number.isFinite(x));
    return xs.length ? median(xs) : undefined;
  };

  if (has('ping1')) {
    const p50 = (r: PerRound) => (r.ping1 && r.ping1.latenciesMs.length ? percentile(r.ping1.latenciesMs, 50) * 1000 : undefined);
    rows.push({ label: '`GET /_ping` c=1 p50', unit: 'µs', better: 'lower', values: values((n) => medianOf(n, p50)), roundRatios: roundRatios(p50), target: { kind: 'ratio', better: 'lower', required: 2.5, moonshot: 1.8 } });
    const pooled = (n: string) => {
      const all = per(n).flatMap((r) => r.ping1?.latenciesMs ?? []);
      return all.length ? percentile(all, 99) * 1000 : undefined;
    };
    rows.push({ label: '`GET /_ping` c=1 p99', unit: 'µs', better: 'lower', values: values(pooled) });
  }
  if (has('ping32')) {
    const rps = (r: PerRound) => (r.ping32 ? r.ping32.count / r.ping32.seconds : undefined);
    rows.push({ label: '`GET /_ping` c=32', unit: 'req/s', better: 'higher', values: values((n) => medianOf(n, rps)), roundRatios: roundRatios(rps), target: { kind: 'ratio', better: 'higher', required: 0.35, moonshot: 0.5 } });
    const cpuPer = (n: string) => {
      const rs = per(n).filter((r) => r.ping32);
      const req = sum(rs.map((r) => r.ping32!.count));
      return n === 'direct' || req === 0 ? undefined : (sum(rs.map((r) => r.ping32!.cpu.proxy)) / req) * 1e6;
    };
    rows.push({ label: 'proxy CPU per `/_ping` at c=32', unit: 'µs', better: 'lower', values: values(cpuPer), target: { kind: 'absolute', better: 'lower', required: 200, moonshot: 100 } });
  }
  if (has('list')) {
    const p50 = (r: PerRound) => (r.list && r.list.latenciesMs.length ? percentile(r.list.latenciesMs, 50) : undefined);
    const rps = (r: PerRound) => (r.list ? r.list.count / r.list.seconds : undefined);
    rows.push({ label: '`GET /containers/json?all=1` (50) c=8 p50', unit: 'ms', digits: 2, better: 'lower', values: values((n) => medianOf(n, p50)), roundRatios: roundRatios(p50), target: { kind: 'ratio', better: 'lower', required: 1.1 } });
    rows.push({ label: '`GET /containers/json?all=1` (50) c=8', unit: 'req/s', better: 'higher', values: values((n) => medianOf(n, rps)), roundRatios: roundRatios(rps) });
  }
  const perGb = (n: string, k: 'export' | 'upload') => {
    const rs = per(n).filter((r) => r[k]);
    const bytes = sum(rs.map((r) => r[k]!.bytes));
    return n === 'direct' || bytes === 0 ? undefined : (sum(rs.map((r) => r[k]!.cpu.proxy)) / (bytes / 1e9)) * 1000;
  };
  if (has('export')) {
    const mbps = (r: PerRound) => (r.export ? r.export.bytes / MB / r.export.seconds : undefined);
    rows.push({ label: `\`GET /containers/{id}/export\` ${Math.round(a.s.exportBytes / MIB)} MiB`, unit: 'MB/s', better: 'higher', values: values((n) => medianOf(n, mbps)), roundRatios: roundRatios(mbps), target: { kind: 'ratio', better: 'higher', required: 0.75, moonshot: 0.95 } });
    rows.push({ label: 'proxy CPU per GB exported', unit: 'ms', better: 'lower', values: values((n) => perGb(n, 'export')) });
  }
  if (has('upload')) {
    const mbps = (r: PerRound) => (r.upload ? r.upload.bytes / MB / r.upload.seconds : undefined);
    rows.push({ label: `\`PUT /containers/{id}/archive\` ${Math.round(a.s.uploadBytes / MIB)} MiB tar`, unit: 'MB/s', better: 'higher', values: values((n) => medianOf(n, mbps)), roundRatios: roundRatios(mbps), target: { kind: 'ratio', better: 'higher', required: 0.75, moonshot: 0.85 } });
    rows.push({ label: 'proxy CPU per GB uploaded', unit: 'ms', better: 'lower', values: values((n) => perGb(n, 'upload')) });
  }
  if (has('lifecycle')) {
    const p50 = (r: PerRound) => (r.lifecycle && r.lifecycle.length ? median(r.lifecycle) : undefined);
    const pooled = (n: string) => {
      const all = per(n).flatMap((r) => r.lifecycle ?? []);
      return all.length ? median(all) : undefined;
    };
    rows.push({ label: 'create -> start -> wait -> remove p50', unit: 'ms', digits: 1, better: 'lower', values: values(pooled), roundRatios: roundRatios(p50), target: { kind: 'ratio', better: 'lower', required: 1.1 } });
  }
  const mib = (b: number | undefined) => (b === undefined ? undefined : b / MIB);
  const proxyValues = (f: (n: string) => number | undefined) => Object.fromEntries(names.map((n) => [n, n === 'direct' ? undefined : f(n)]));
  const exactNote = (k: 'export' | 'upload' | 'streams') => (proxies.every((p) => res.peaks[p]?.[k]?.exact !== false) ? '' : '(sampled every 20 ms)');
  if (proxies.some((p) => res.peaks[p]?.export)) {
    const gb = (a.s.rssBytes / MIB / 1024).toFixed(2).replace(/\.?0+$/, '');
    rows.push({ label: `peak RSS during a ${gb} GiB export`, unit: 'MiB', better: 'lower', values: proxyValues((n) => mib(res.peaks[n]?.export?.peak)), target: { kind: 'absolute', better: 'lower', required: 150 }, note: exactNote('export') });
    rows.push({ label: `peak RSS during a ${gb} GiB upload`, unit: 'MiB', better: 'lower', values: proxyValues((n) => mib(res.peaks[n]?.upload?.peak)), target: { kind: 'absolute', better: 'lower', required: 150 }, note: exactNote('upload') });
  }
  if (proxies.some((p) => res.peaks[p]?.streams)) {
    rows.push({ label: `peak RSS with ${a.s.streams} idle \`logs -f\` streams`, unit: 'MiB', better: 'lower', values: proxyValues((n) => mib(res.peaks[n]?.streams?.peak)), target: { kind: 'absolute', better: 'lower', required: 250 }, note: exactNote('streams') });
    rows.push({ label: `proxy CPU with ${a.s.streams} idle \`logs -f\` streams open, over ${IDLE_CPU_MS / 1000} s`, unit: 'ms per s', digits: 1, better: 'lower', values: proxyValues((n) => res.peaks[n]?.streams?.idleCpuMsPerS) });
  }
  const rssRounds = res.rssAfterRound['dockward'] ?? [];
  if (rssRounds.length >= 2) {
    // "Flat": RSS does not climb with use. A GC heap breathes (garbage not yet collected only ever
    // adds), and round 1 starts from a cold heap: so the floor of the later rounds is compared
    // with the floor of the earlier ones, round 1 left out as warm-up. A leak raises the floor.
    const growth = (n: string) => rssGrowth(res.rssAfterRound[n] ?? []);
    rows.push({ label: `RSS growth (${rssHalves(rssRounds.length)})`, unit: 'MiB', digits: 1, better: 'lower', values: proxyValues(growth), target: { kind: 'absolute', better: 'lower', required: 16 } });
  }
  if (res.policy) {
    const n = res.policy.rules.toLocaleString('en-US');
    rows.push({ label: `policy decision, ${n} rules, slowest of ${res.policy.perCase.length} cases`, unit: 'ns', better: 'lower', values: { dockward: res.policy.worstNs }, target: { kind: 'absolute', better: 'lower', required: 5000 } });
    rows.push({ label: `policy decision, ${n} rules, mix of the cases`, unit: 'ns', better: 'lower', values: { dockward: res.policy.mixNs } });
    rows.push({ label: 'classify (a request to its action), mix of 6 paths', unit: 'ns', better: 'lower', values: { dockward: res.policy.classifyNs } });
  }

  const notes: string[] = [];
  const ping32 = (n: string) => per(n).flatMap((r) => (r.ping32 ? [r.ping32] : []));
  const cpuSum = (xs: LoopResult[], k: keyof CpuUsed) => sum(xs.map((x) => x.cpu[k]));
  if (has('ping32')) {
    for (const n of names) {
      const xs = ping32(n);
      const req = sum(xs.map((x) => x.count));
      const wall = sum(xs.map((x) => x.cpu.wall));
      if (req === 0 || wall === 0) continue;
      const us = (k: keyof CpuUsed) => ((cpuSum(xs, k) / req) * 1e6).toFixed(0);
      notes.push(
        `\`/_ping\` c=32 via ${n}: client ${us('client')} µs CPU/request (${((cpuSum(xs, 'client') / wall) * 100).toFixed(0)}% of one core), ` +
          `dockerd ${us('daemon')} µs/request, proxy ${us('proxy')} µs/request; other processes on the machine used ${(cpuSum(xs, 'other') / wall).toFixed(2)} cores meanwhile.`,
      );
    }
    const clientShare = Math.max(...names.map((n) => (cpuSum(ping32(n), 'client') / Math.max(1e-9, sum(ping32(n).map((x) => x.cpu.wall))))));
    if (clientShare > 0.8) notes.push(`WARNING: the load generator used ${(clientShare * 100).toFixed(0)}% of a core in a c=32 phase: it may be the bottleneck.`);
  }
  // Transfers on a 2-core machine: who used the CPU, per GB, so a ratio can be read against it.
  for (const k of ['export', 'upload'] as const) {
    if (!has(k)) continue;
    for (const n of names) {
      const xs = per(n).flatMap((r) => (r[k] ? [r[k]!] : []));
      const gb = sum(xs.map((x) => x.bytes)) / 1e9;
      const wall = sum(xs.map((x) => x.cpu.wall));
      if (gb === 0 || wall === 0) continue;
      const msPerGb = (key: keyof CpuUsed) => ((sum(xs.map((x) => x.cpu[key])) / gb) * 1000).toFixed(0);
      const cores = (sum(xs.map((x) => x.cpu.client + x.cpu.proxy + x.cpu.daemon + x.cpu.other)) / wall).toFixed(2);
      notes.push(`${k} via ${n}: CPU ms per GB: client ${msPerGb('client')}, dockerd ${msPerGb('daemon')}, proxy ${msPerGb('proxy')}, other processes ${msPerGb('other')}, stolen by the host's other guests ${msPerGb('steal')}; ${cores} of the machine's cores busy.`);
    }
  }
  const rssLine = (n: string) => {
    const parts: string[] = [];
    if (res.rssStart[n]) parts.push(`after start-up ${(res.rssStart[n] / MIB).toFixed(1)} MiB`);
    const xs = res.rssAfterRound[n];
    if (xs?.length) parts.push(`after each round ${xs.map((x) => (x / MIB).toFixed(1)).join(', ')} MiB`);
    if (res.rssFinal[n]) parts.push(`at the end ${(res.rssFinal[n] / MIB).toFixed(1)} MiB`);
    return parts.length ? `${n} RSS: ${parts.join('; ')}` : '';
  };
  for (const n of proxies) {
    const l = rssLine(n);
    if (l) notes.push(l + '.');
    const st = res.peaks[n]?.streams;
    if (st) notes.push(`${n}: ${st.open} of ${a.s.streams} streams open; RSS with them open ${(st.rssOpen / MIB).toFixed(1)} MiB, 1.5 s after closing them ${(st.rssAfter / MIB).toFixed(1)} MiB.`);
    const ex = res.peaks[n]?.export;
    const up = res.peaks[n]?.upload;
    if (ex && up) notes.push(`${n}: the peak-RSS transfers ran at ${ex.mbps.toFixed(0)} MB/s (export) and ${up.mbps.toFixed(0)} MB/s (upload, streamed from a 1 MiB buffer).`);
  }
  if (res.policy) {
    notes.push(
      `policy: compiled ${res.policy.rules} rules in ${res.policy.compileMs.toFixed(0)} ms; ns per decision: ` +
        res.policy.perCase.map((c) => `${c.name} ${c.ns.toFixed(0)}`).join(', ') +
        `; mix ${res.policy.mixNs.toFixed(0)}.`,
    );
  }
  notes.push('Ratios are dockward (or the peer) divided by direct, from per-endpoint medians over rounds; the spread column is the min-max of the per-round ratios (the noise of this run). p99 pools all rounds.');
  if (a.s.quick) notes.push('QUICK (smoke) run: short phases and small transfers; the figures show the bench works, not how fast the gateway is.');
  for (const e of res.errors) notes.push(`ERROR: ${e}`);
  context.push(`run: ${a.s.quick ? 'quick' : 'full'}, ${a.s.rounds} round(s), ${a.client === 'raw' ? 'raw keep-alive client' : 'node:http keep-alive Agent client'}, gateway upstreamClient ${a.upstreamClient ?? 'default'}, phases ${[...a.only].join(', ')}, ${(elapsedMs / 1000).toFixed(0)} s`);
  return { title: `dockward vs the Docker socket, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`, rows, endpoints: names, context, notes };
}

async function describeMachine(env: Env | undefined, peers: Proc[]): Promise<string[]> {
  const out: string[] = [];
  const mem = (os.totalmem() / 1024 ** 3).toFixed(1);
  // It caps the send buffer the gateway asks for on an upload's daemon connection (relay/sockopt.ts).
  let wmemMax = 'unknown';
  try {
    wmemMax = readFileSync('/proc/sys/net/core/wmem_max', 'utf8').trim();
  } catch {
    // not shown in this network namespace
  }
  out.push(`machine: ${os.availableParallelism()} CPUs (${cpuModel()}), ${mem} GiB RAM, Linux ${os.release()} (net.core.wmem_max ${wmemMax}), load average at start ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  let docker = 'unknown';
  if (env) {
    try {
      const v = await callJson<{ Version: string; ApiVersion: string }>(env.direct, 'GET', '/version');
      const info = await callJson<{ Driver: string }>(env.direct, 'GET', '/info');
      docker = `${v.Version} (API ${v.ApiVersion}, storage driver ${info.Driver})`;
    } catch (e) {
      docker = `unknown (${(e as Error).message})`;
    }
  }
  const sha = git(['rev-parse', '--short=12', 'HEAD']) ?? 'unknown';
  const dirty = (git(['status', '--porcelain', '--untracked-files=no']) ?? '') !== '' ? ' + uncommitted changes' : '';
  let versions = `versions: node ${process.version}, dockerd ${docker}, dockward ${sha}${dirty}`;
  if (peers.some((p) => p.endpoint.name === 'haproxy')) {
    const bin = haproxyBinary();
    if (bin) versions += `, haproxy ${haproxyVersion(bin)} (${path.basename(PEER_CFG)})`;
  }
  if (peers.some((p) => p.endpoint.name === 'byte-relay')) versions += ', byte-relay (bench/byte-relay.ts: a Node byte relay with no checks)';
  out.push(versions);
  return out;
}

// ---------------------------------------------------------------------------------------------
// --profile

async function profile(a: Args, env: Env): Promise<void> {
  const ep = env.gateway.endpoint;
  const dp = env.daemon.pids;
  const need = (p: Phase) => p === a.profilePhase;
  const fx = await fixtures(a, env, need);
  const ms = a.profileSeconds * 1000;
  let requests = 0;
  let fromUs = 0;
  let toUs = 0;
  const nowUs = () => Number(process.hrtime.bigint() / 1000n);
  let cpu: CpuUsed | undefined;
  log(`profiling ${a.profilePhase} through the gateway for ${a.profileSeconds} s`);
  switch (a.profilePhase) {
    case 'ping1':
    case 'ping32':
    case 'list': {
      const p = a.profilePhase === 'list' ? fx.listPath! : '/_ping';
      const concurrency = a.profilePhase === 'ping1' ? 1 : a.profilePhase === 'ping32' ? 32 : 8;
      // Warm up first (JIT, connection pools), then profile only the steady state.
      await closedLoop(channels(a.client, ep, 'GET', p, concurrency), ep.pid, { concurrency, warmupMs: 0, durationMs: 1_000, recordLatency: false, maxRequests: 1_000_000, daemonPids: dp });
      fromUs = nowUs();
      const r = await closedLoop(channels(a.client, ep, 'GET', p, concurrency), ep.pid, { concurrency, warmupMs: 0, durationMs: ms, recordLatency: false, maxRequests: 10_000_000, daemonPids: dp });
      toUs = nowUs();
      requests = r.count;
      cpu = r.cpu;
      if (r.errors > 0) log(`WARNING: ${r.errors} failed requests, first: ${r.firstError}`);
      break;
    }
    case 'export':
    case 'upload': {
      const one = () =>
        a.profilePhase === 'export'
          ? download(ep, `/containers/${fx.exportId}/export`, { timeoutMs: 120_000, daemonPids: dp })
          : uploadBuffer(ep, `/containers/${fx.uploadId}/archive?path=/tmp`, fx.uploadBody!, { timeoutMs: 120_000, daemonPids: dp });
      await one();
      fromUs = nowUs();
      const deadline = performance.now() + ms;
      let proxyCpu = 0;
      let wall = 0;
      let bytes = 0;
      for (let i = 0; i < 100 && performance.now() < deadline; i++) {
        const r = await one();
        requests++;
        proxyCpu += r.cpu.proxy;
        wall += r.cpu.wall;
        bytes += r.bytes;
      }
      toUs = nowUs();
      log(`${requests} transfers, ${(bytes / MB).toFixed(0)} MB, proxy CPU ${((proxyCpu / (bytes / 1e9)) * 1000).toFixed(0)} ms per GB, ${(bytes / MB / wall).toFixed(0)} MB/s`);
      break;
    }
  }
  if (cpu) log(`gateway CPU under the profiler: ${((cpu.proxy / Math.max(1, requests)) * 1e6).toFixed(0)} µs per request (the profiler adds its own cost)`);
  log('stopping the gateway so that it writes its profile');
  await env.gateway.stop();
  const profDir = path.join(env.dir, 'profile');
  const files = existsSync(profDir) ? readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')) : [];
  if (files.length === 0) throw new Error(`the gateway wrote no .cpuprofile into ${profDir}`);
  const file = path.join(profDir, files[0]!);
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const summary = summarise(prof, { root: REPO_ROOT, fromUs, toUs, top: 25 });
  const keep = path.join(os.tmpdir(), `dockward-bench-${a.profilePhase}-${Date.now()}.cpuprofile`);
  writeFileSync(keep, JSON.stringify(prof));
  process.stdout.write(`\n## Gateway CPU profile: ${a.profilePhase}, ${a.profileSeconds} s\n\n${formatSummary(summary, requests)}\n\nprofile saved as ${keep} (open in Chrome DevTools > Performance, or speedscope)\n`);
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const a = parse(process.argv.slice(2));
  const started = performance.now();
  const machine0 = machineCpu();
  const watchdog = setTimeout(() => {
    log(`the run exceeded its budget of ${a.s.budgetMs / 60_000} minutes: aborting`);
    void cleanup().then(() => process.exit(3));
  }, a.s.budgetMs);
  watchdog.unref();
  const need = (p: Phase) => a.only.has(p);
  const res: Results = { rounds: {}, rssAfterRound: {}, peaks: {}, rssFinal: {}, rssStart: {}, errors: [] };
  const needsDocker = a.profile || PHASES.some((p) => p !== 'policy' && need(p));
  let env: Env | undefined;
  try {
    if (needsDocker) env = await setUp(a);
    if (a.profile) {
      await profile(a, env!);
      return 0;
    }
    const context = await describeMachine(env, env?.peers ?? []);
    if (env) {
      for (const p of [env.gateway, ...env.peers]) {
        const m = memory(p.pid);
        if (m) res.rssStart[p.endpoint.name] = m.rss;
      }
      const fx = await fixtures(a, env, need);
      await runRounds(a, env, fx, res, need);
      await runPeaks(a, env, res, need);
    }
    if (need('policy')) {
      log(`policy decision with ${a.s.policyRules} rules`);
      res.policy = benchPolicy({ rules: a.s.policyRules, batches: a.s.policyBatches, batchMs: a.s.policyBatchMs });
    }
    if (env && !env.gateway.running()) res.errors.push(`the gateway exited during the run:\n${env.gateway.logTail().slice(-2000)}`);
    const machine1 = machineCpu();
    const stolen = (machine1.steal - machine0.steal) / Math.max(1e-9, machine1.total - machine0.total);
    context.push(`CPU time stolen by the host's other guests during the run: ${(stolen * 100).toFixed(1)}% (above a few per cent, the machine was shared: expect noise)`);
    const report = build(a, env, res, context, performance.now() - started);
    const text = renderReport(report);
    process.stdout.write('\n' + text + '\n');
    if (a.json) writeFileSync(a.json, JSON.stringify({ settings: a.s, report, results: stripLatencies(res) }, null, 1));
    if (a.write) {
      writeDoc(DOC, text);
      log(`wrote ${path.relative(REPO_ROOT, DOC)}`);
    }
    const failed = report.rows.filter((r) => verdict(r) === 'FAIL').length;
    log(`${failed === 0 ? 'all targets met' : `${failed} target(s) missed`}${res.errors.length ? `; ${res.errors.length} error(s)` : ''}`);
    return res.errors.length > 0 ? 1 : 0;
  } finally {
    clearTimeout(watchdog);
    await cleanup();
  }
}

/** The JSON keeps summaries, not hundreds of thousands of latencies. */
function stripLatencies(res: Results): unknown {
  return {
    ...res,
    rounds: Object.fromEntries(
      Object.entries(res.rounds).map(([k, rs]) => [
        k,
        rs.map((r) =>
          Object.fromEntries(
            Object.entries(r).map(([pk, v]) => {
              if (v && typeof v === 'object' && 'latenciesMs' in v) {
                const l = (v as LoopResult).latenciesMs;
                const [lo, hi] = minMax(l);
                return [pk, { ...v, latenciesMs: undefined, p50Ms: percentile(l, 50), p99Ms: percentile(l, 99), minMs: lo, maxMs: hi }];
              }
              return [pk, v];
            }),
          ),
        ),
      ]),
    ),
  };
}

main().then(
  (code) => process.exit(code),
  async (e: unknown) => {
    log(`failed: ${(e as Error).stack ?? String(e)}`);
    await cleanup();
    process.exit(2);
  },
);

/** Rounds 2.. split in two halves (with 2 rounds: 1 and 2). */
function rssSplit(n: number): { early: [number, number]; late: [number, number] } {
  if (n < 3) return { early: [0, 1], late: [n - 1, n] };
  const mid = 1 + Math.ceil((n - 1) / 2);
  return { early: [1, mid], late: [mid, n] };
}

function rssHalves(n: number): string {
  const { early, late } = rssSplit(n);
  const span = ([a, b]: [number, number]) => (b - a === 1 ? `${a + 1}` : `${a + 1}-${b}`);
  return `floor of rounds ${span(late)} minus floor of rounds ${span(early)}`;
}

/** MiB: the lowest RSS after the later rounds minus the lowest after the earlier ones. */
function rssGrowth(xs: readonly number[]): number | undefined {
  if (xs.length < 2) return undefined;
  const { early, late } = rssSplit(xs.length);
  return (Math.min(...xs.slice(...late)) - Math.min(...xs.slice(...early))) / MIB;
}
