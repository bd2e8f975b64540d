/**
 * The differential suite (issue 3, item 4): the gateway's reading of a body against the real
 * dockerd's. Each body is
 *   1. read with the gateway's own code (docker/json.ts + docker/facts.ts),
 *   2. sent through a permissive `dockward serve` to the private dockerd,
 *   3. and, when the daemon accepted it, compared with what the daemon really did: its
 *      inspect output (HostConfig as decoded, Mounts as mounted, the image it resolved), and
 *      for a few rows what a started container really has (capabilities, namespaces).
 * A body the gateway refuses must be one our reader refuses, and must leave nothing behind.
 *
 * The daemon is the oracle; the test's reading of its answers is written independently of
 * docker/facts.ts, so a shared mistake does not hide itself.
 *
 * Property runs are time-bounded: DOCKWARD_FUZZ_SECONDS (default 20) is split between the
 * create, exec and update properties. Every container and volume is removed.
 */
import { readlinkSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveFacts, INDETERMINATE, type Facts } from '../../src/docker/facts.js';
import { readDockerJson } from '../../src/docker/json.js';
import {
  describeE2E,
  dockerSock,
  RUN_ID,
  scratchDir,
  startGateway,
  TEST_IMAGE,
  TEST_LABEL_KEY,
  uniqueName,
  type Gateway,
} from './harness.js';

const FUZZ_SECONDS = Number(process.env.DOCKWARD_FUZZ_SECONDS ?? '20');
const FUZZ_MS = Math.max(1, FUZZ_SECONDS) * 1000;

/** Permissive, but with rules that read facts, so the gateway derives them for every action that has them. */
const PERMISSIVE_POLICY = `
rules:
  - name: everything
    effect: allow
    subjects: ["*"]
    actions: ["*"]
  - name: read-container-facts
    effect: deny
    subjects: ["*"]
    actions: [container.create, container.start, container.update]
    when:
      create.memory: -12345
  - name: read-exec-facts
    effect: deny
    subjects: ["*"]
    actions: [container.exec]
    when:
      exec.user: dockward-never
  - name: read-volume-facts
    effect: deny
    subjects: ["*"]
    actions: [volume.create]
    when:
      create.labels.dockward-never: never
`;

// ---------------------------------------------------------------------------------------------
// HTTP to the daemon (directly) and to the gateway.

interface HttpAnswer {
  status: number;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

function httpCall(opts: http.RequestOptions, body?: string | Buffer): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(opts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        const text = buf.toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function daemon(method: string, urlPath: string, body?: string | Buffer): Promise<HttpAnswer> {
  const headers: http.OutgoingHttpHeaders = {};
  if (body !== undefined) Object.assign(headers, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  return httpCall({ socketPath: dockerSock(), method, path: urlPath, headers }, body);
}

/** A container's log, demultiplexed (8-byte frame headers of a non-TTY stream). */
async function logsOf(id: string): Promise<string> {
  const r = await new Promise<Buffer>((resolve, reject) => {
    const req = http.request({ socketPath: dockerSock(), method: 'GET', path: `/containers/${id}/logs?stdout=1&stderr=1` }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks)));
    });
    req.on('error', reject);
    req.end();
  });
  let out = '';
  for (let i = 0; i + 8 <= r.length;) {
    const size = r.readUInt32BE(i + 4);
    out += r.subarray(i + 8, i + 8 + size).toString('utf8');
    i += 8 + size;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The daemon's reading, from its own answers.

const hexId = /^[0-9a-f]{64}$/;

/** Go path.Clean, written here independently of the gateway's. */
function clean(p: string): string {
  return p.startsWith('/') ? path.posix.resolve('/', p) : p;
}

interface DaemonContext {
  baselineMasked: unknown;
  baselineReadonly: unknown;
  defaultRuntime: string;
  /** cgroup v1: 20.10 puts containers in the host cgroup namespace unless asked otherwise. */
  cgroupnsDefaultHost: boolean;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function daemonReading(inspect: any, ctx: DaemonContext): Promise<Record<string, unknown>> {
  const hc = inspect.HostConfig ?? {};
  const hostPaths = new Set<string>();
  const volumes = new Set<string>();
  for (const m of inspect.Mounts ?? []) {
    if (m.Type === 'bind') hostPaths.add(clean(m.Source));
    if (m.Type === 'volume') {
      if (!hexId.test(m.Name)) volumes.add(m.Name);
      const v = await daemon('GET', `/volumes/${m.Name}`);
      const device = v.json?.Options?.device;
      if (typeof device === 'string') hostPaths.add(clean(device));
    }
  }
  const namespaces: string[] = [];
  const joins = (mode: string | undefined) => mode === 'host' || (mode ?? '').startsWith('container:');
  if ((hc.PidMode ?? '') !== '') namespaces.push('pid');
  if (joins(hc.IpcMode)) namespaces.push('ipc');
  if ((hc.UTSMode ?? '') !== '') namespaces.push('uts');
  if (joins(hc.NetworkMode)) namespaces.push('network');
  if ((hc.UsernsMode ?? '') !== '') namespaces.push('userns');
  if (hc.CgroupnsMode === 'host') namespaces.push('cgroup');
  const secOpts: string[] = (hc.SecurityOpt ?? []).map((s: string) => (s === 'disable' ? 'label=disable' : !s.includes('=') && s.includes(':') ? s.replace(':', '=') : s));
  const loosened = secOpts.some((s) => /^(seccomp|apparmor)=./.test(s) || s.startsWith('label=') || s.startsWith('systempaths='));
  const ports = new Set<number>();
  for (const list of Object.values(hc.PortBindings ?? {}) as { HostPort?: string }[][]) {
    for (const b of list ?? []) {
      const hp = b?.HostPort ?? '';
      if (hp === '') ports.add(0);
      else {
        const [a, z] = hp.split('-');
        for (let p = Number(a); p <= Number(z ?? a); p++) ports.add(p);
      }
    }
  }
  if (hc.PublishAllPorts) ports.add(0);
  const devices: string[] = [
    ...(hc.Devices ?? []).map((d: { PathOnHost: string }) => d.PathOnHost),
    ...(hc.DeviceRequests ?? []).map((r: { Driver: string; Capabilities: string[][] | null }) =>
      `request:${r.Driver}${r.Capabilities && r.Capabilities.length > 0 ? `:${r.Capabilities.map((c) => c.join('+')).join('|')}` : ''}`),
    ...(hc.DeviceCgroupRules ?? []).map((r: string) => `rule:${r}`),
  ];
  return {
    'create.imageId': inspect.Image,
    'create.user': inspect.Config?.User ?? '',
    // The gateway adds exactly the ownership labels after the decision (issue 4); every other
    // label must be the one the policy read.
    'create.labels': withoutOwnership(inspect.Config?.Labels ?? {}),
    'create.privileged': hc.Privileged === true,
    // The daemon keeps CapAdd as sent; it upper-cases when it applies them (Go strings.ToUpper,
    // which agrees with JavaScript's for the spellings generated here).
    'create.capAdd': [...new Set((hc.CapAdd ?? []).map((c: string) => c.toUpperCase().replace(/^CAP_/, '')))],
    'create.hostPaths': [...hostPaths].sort(),
    'create.volumes': [...volumes].sort(),
    'create.devices': devices,
    'create.hostNamespaces': namespaces,
    'create.securityOpt': secOpts,
    // null: the runtime's default masks (a legacy start stores a HostConfig without them).
    'create.unconfined': hc.Privileged === true || loosened ||
      (hc.MaskedPaths != null && JSON.stringify(hc.MaskedPaths) !== JSON.stringify(ctx.baselineMasked)) ||
      (hc.ReadonlyPaths != null && JSON.stringify(hc.ReadonlyPaths) !== JSON.stringify(ctx.baselineReadonly)),
    'create.sysctls': Object.keys(hc.Sysctls ?? {}).sort(),
    'create.cgroupParent': hc.CgroupParent ?? '',
    'create.runtime': hc.Runtime ?? '',
    'create.volumesFrom': (hc.VolumesFrom ?? []).map((v: string) => v.split(':')[0]),
    'create.publishedPorts': [...ports].sort((a, b) => a - b),
    'create.memory': hc.Memory ?? 0,
    'create.nanoCpus': hc.NanoCpus ?? 0,
  };
}

/** Where the gateway's facts and the daemon's reading differ; [] when they agree. */
async function disagreements(facts: Facts, inspect: unknown, ctx: DaemonContext): Promise<string[]> {
  const d = await daemonReading(inspect, ctx);
  const out: string[] = [];
  const same = (key: string, ours: unknown, theirs: unknown) => {
    if (JSON.stringify(ours) !== JSON.stringify(theirs)) out.push(`${key}: gateway ${JSON.stringify(ours)}, daemon ${JSON.stringify(theirs)}`);
  };
  const sorted = (v: unknown) => [...(v as string[])].sort();
  same('create.user', facts['create.user'], d['create.user']);
  const byKey = (o: unknown) => Object.fromEntries(Object.entries(o as Record<string, string>).sort(([a], [b]) => (a < b ? -1 : 1)));
  same('create.labels', byKey(facts['create.labels']), byKey(d['create.labels']));
  same('create.privileged', facts['create.privileged'], d['create.privileged']);
  same('create.capAdd', sorted(facts['create.capAdd']), sorted(d['create.capAdd']));
  same('create.hostPaths', sorted(facts['create.hostPaths']), d['create.hostPaths']);
  same('create.volumes', sorted(facts['create.volumes']), d['create.volumes']);
  same('create.devices', facts['create.devices'], d['create.devices']);
  let ns = d['create.hostNamespaces'] as string[];
  // The daemon's default, not the request: only a difference when the request asked for it.
  if (ctx.cgroupnsDefaultHost && !(facts['create.hostNamespaces'] as string[]).includes('cgroup')) ns = ns.filter((n) => n !== 'cgroup');
  same('create.hostNamespaces', facts['create.hostNamespaces'], ns);
  // The daemon appends label=disable itself (privileged, host pid or ipc), even to a list that has it.
  same('create.securityOpt', [...new Set(sorted(facts['create.securityOpt']))], [...new Set(sorted(d['create.securityOpt']))]);
  same('create.unconfined', facts['create.unconfined'], d['create.unconfined']);
  same('create.sysctls', sorted(facts['create.sysctls']), d['create.sysctls']);
  same('create.cgroupParent', facts['create.cgroupParent'], d['create.cgroupParent']);
  // "" is the default runtime; the daemon stores it filled in, or empty for a body without HostConfig.
  same('create.runtime', facts['create.runtime'] || ctx.defaultRuntime, d['create.runtime'] || ctx.defaultRuntime);
  same('create.volumesFrom', facts['create.volumesFrom'], d['create.volumesFrom']);
  same('create.publishedPorts', facts['create.publishedPorts'], d['create.publishedPorts']);
  same('create.memory', facts['create.memory'], d['create.memory']);
  same('create.nanoCpus', facts['create.nanoCpus'], d['create.nanoCpus']);
  // The image: the one the gateway's name resolves to must be the one the daemon used.
  const image = facts['create.image'];
  if (image !== INDETERMINATE) {
    const resolved = await daemon('GET', `/images/${encodeURIComponent(image as string)}/json`);
    same('create.image', resolved.json?.Id ?? `unknown image ${String(image)}`, d['create.imageId']);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Bodies: a small JSON model whose struct keys can be respelled, and a renderer.

type J = { t: 'struct'; entries: [string, J][] } | { t: 'map'; entries: [string, J][] } | { t: 'list'; items: J[] } | { t: 'value'; v: unknown };

const struct = (entries: [string, J][]): J => ({ t: 'struct', entries });
const map = (o: Record<string, string | null>): J => ({ t: 'map', entries: Object.entries(o).map(([k, v]) => [k, val(v)]) });
const list = (items: J[]): J => ({ t: 'list', items });
const val = (v: unknown): J => ({ t: 'value', v });

/** A tiny deterministic PRNG, so a failing case is reproduced by its seed. */
function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x100000000;
  };
}

/** A spelling of a struct key that Go's decoder matches to the same field. */
function respell(key: string, rnd: () => number): string {
  const r = rnd();
  if (r < 0.4) return key;
  if (r < 0.5) return key.toLowerCase();
  if (r < 0.6) return key.toUpperCase();
  if (r < 0.8) return [...key].map((c) => (rnd() < 0.5 ? c.toLowerCase() : c.toUpperCase())).join('');
  // The two non-ASCII runes Go folds onto ASCII letters.
  return key.replace(/[sS]/g, (c) => (rnd() < 0.7 ? '\u017f' : c)).replace(/[kK]/g, (c) => (rnd() < 0.7 ? '\u212a' : c));
}

/** A JSON string literal, with some characters written as \u escapes (Go decodes them alike). */
function quote(s: string, rnd: () => number, escapeRate: number): string {
  let out = '"';
  for (const ch of s) {
    const code = ch.codePointAt(0)!;
    if (code < 0x10000 && rnd() < escapeRate) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += JSON.stringify(ch).slice(1, -1);
  }
  return `${out}"`;
}

function render(j: J, rnd: () => number): string {
  switch (j.t) {
    case 'struct':
      return `{${j.entries.map(([k, v]) => `${quote(respell(k, rnd), rnd, 0.05)}:${render(v, rnd)}`).join(',')}}`;
    case 'map':
      // Map keys are exact for Go (labels, sysctls, driver options): never respelled.
      return `{${j.entries.map(([k, v]) => `${quote(k, rnd, 0.05)}:${render(v, rnd)}`).join(',')}}`;
    case 'list':
      return `[${j.items.map((i) => render(i, rnd)).join(',')}]`;
    case 'value':
      return typeof j.v === 'string' ? quote(j.v, rnd, 0.03) : JSON.stringify(j.v);
  }
}

// ---------------------------------------------------------------------------------------------
// The generated container create bodies.

const ABSENT = Symbol('absent');
type Maybe<T> = T | null | typeof ABSENT;
const maybe = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<Maybe<T>> =>
  fc.oneof({ weight: 3, arbitrary: fc.constant(ABSENT) }, { weight: 1, arbitrary: fc.constant(null) }, { weight: 3, arbitrary: arb });

interface Pools {
  scratch: string;
  base: string;
}

function capSpelling(name: string): fc.Arbitrary<string> {
  return fc.constantFrom(name, name.toLowerCase(), `CAP_${name}`, `cap_${name.toLowerCase()}`, `Cap_${name}`, name.toLowerCase().replace(/s/g, '\u017f').replace(/i/g, '\u0131'));
}

function hostConfigArb(p: Pools, caseId: () => string) {
  const volumeName = (suffix: string) => `dwv-${caseId()}-${suffix}`;
  return fc.record({
    Privileged: maybe(fc.boolean()),
    CapAdd: maybe(fc.oneof(
      fc.uniqueArray(fc.constantFrom('NET_ADMIN', 'SYS_ADMIN', 'SYS_PTRACE', 'CHOWN', 'ALL'), { maxLength: 3 }).chain((names) => fc.tuple(...names.map(capSpelling))).map((l) => l as string[]),
      capSpelling('NET_RAW'),
    )),
    Binds: maybe(fc.subarray([`${p.scratch}/a:/b1`, `${p.scratch}/x/../b:/b2:ro`, '/etc:/b3:ro', '/:/b4', 'NAMED:/b5', '/b6', `${p.scratch}//a/./:/b7:rw`])),
    Mounts: maybe(fc.subarray(['bind', 'volume', 'bindvolume', 'tmpfs', 'lowercase'])),
    PidMode: maybe(fc.constantFrom('', 'host')),
    IpcMode: maybe(fc.constantFrom('', 'host', 'private', 'shareable', 'none')),
    UTSMode: maybe(fc.constantFrom('', 'host')),
    NetworkMode: maybe(fc.constantFrom('none', 'host', 'default', '')),
    UsernsMode: maybe(fc.constantFrom('', 'host')),
    CgroupnsMode: maybe(fc.constantFrom('', 'host', 'private')),
    SecurityOpt: maybe(fc.subarray(['seccomp=unconfined', 'seccomp:unconfined', 'apparmor=unconfined', 'label=disable', 'label:disable', 'disable', 'no-new-privileges', 'no-new-privileges=true'], { maxLength: 3 })),
    MaskedPaths: maybe(fc.constantFrom([], ['/proc/kcore'])),
    ReadonlyPaths: maybe(fc.constantFrom([], ['/proc/sys'])),
    Sysctls: maybe(fc.constantFrom({ 'kernel.shm_rmid_forced': '1' }, { 'net.ipv4.ip_forward': '1' })),
    Memory: maybe(fc.constantFrom(0, 8388608, 16777216)),
    NanoCpus: maybe(fc.constantFrom(0, 500000000)),
    CgroupParent: maybe(fc.constantFrom('', `dw-${RUN_ID}`)),
    Runtime: maybe(fc.constantFrom('', 'runc')),
    Devices: maybe(fc.constant([{ PathOnHost: '/dev/null', PathInContainer: '/dev/xnull', CgroupPermissions: 'rwm' }])),
    DeviceCgroupRules: maybe(fc.constant(['c 1:3 mr'])),
    DeviceRequests: maybe(fc.constant([{ Driver: 'nvidia', Count: -1, Capabilities: [['gpu']] }])),
    VolumesFrom: maybe(fc.constantFrom([p.base], [`${p.base}:ro`])),
    PortBindings: maybe(fc.constantFrom({ '80/tcp': [{ HostPort: '18080' }] }, { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] }, { '81/tcp': [{ HostPort: '18081-18082' }] })),
    PublishAllPorts: maybe(fc.boolean()),
  }).map((hc) => ({ hc, volumeName }));
}

/** The J node of one HostConfig field value. */
function hostConfigValue(name: string, v: unknown, p: Pools, volumeName: (s: string) => string): J {
  if (v === null) return val(null);
  switch (name) {
    case 'Binds':
      return list((v as string[]).map((b) => val(b.replace('NAMED', volumeName('b')))));
    case 'Mounts':
      return list((v as string[]).map((kind) => {
        switch (kind) {
          case 'bind': return struct([['Type', val('bind')], ['Source', val(`${p.scratch}/a`)], ['Target', val('/m1')], ['ReadOnly', val(true)]]);
          case 'volume': return struct([['Type', val('volume')], ['Source', val(volumeName('m'))], ['Target', val('/m2')]]);
          case 'bindvolume': return struct([['Type', val('volume')], ['Source', val(volumeName('bind'))], ['Target', val('/m3')],
            ['VolumeOptions', struct([['DriverConfig', struct([['Name', val('local')], ['Options', map({ type: 'none', o: 'bind', device: `${p.scratch}/b/` })]])]])]]);
          case 'tmpfs': return struct([['Type', val('tmpfs')], ['Target', val('/m4')]]);
          default: return struct([['type', val('bind')], ['source', val(`${p.scratch}/b`)], ['target', val('/m5')]]);
        }
      }));
    case 'Sysctls':
      return map(v as Record<string, string>);
    case 'Devices':
    case 'DeviceRequests':
      return list((v as Record<string, unknown>[]).map((o) => struct(Object.entries(o).map(([k, x]) => [k, val(x)]))));
    case 'PortBindings':
      return { t: 'map', entries: Object.entries(v as Record<string, Record<string, string>[]>).map(([port, bs]) => [port, list(bs.map((b) => struct(Object.entries(b).map(([k, x]) => [k, val(x)]))))]) };
    default:
      return val(v);
  }
}

const createArb = (p: Pools, caseId: () => string) =>
  fc.record({
    image: fc.constantFrom(TEST_IMAGE, `docker.io/library/${TEST_IMAGE}`, `library/${TEST_IMAGE}`, `index.docker.io/library/${TEST_IMAGE}`),
    user: maybe(fc.constantFrom('', '1000:1000', 'nobody')),
    extraLabel: fc.boolean(),
    placement: fc.constantFrom('inner', 'inner', 'legacy', 'legacy-null', 'split'),
    host: hostConfigArb(p, caseId),
    seed: fc.integer({ min: 1, max: 0x7fffffff }),
  }).map((s) => {
    const rnd = prng(s.seed);
    const labels: Record<string, string> = { [TEST_LABEL_KEY]: RUN_ID };
    if (s.extraLabel) labels['dockward.diff'] = 'x\u00e9';
    const top: [string, J][] = [['Image', val(s.image)], ['Labels', map(labels)], ['Cmd', list([val('true')])]];
    if (s.user !== ABSENT) top.push(['User', val(s.user)]);
    const fields: [string, J][] = [];
    for (const [name, v] of Object.entries(s.host.hc)) {
      if (v !== ABSENT) fields.push([name, hostConfigValue(name, v, p, s.host.volumeName)]);
    }
    if (s.placement === 'inner') top.push(['HostConfig', struct(fields)]);
    else if (s.placement === 'legacy') top.push(...fields);
    else if (s.placement === 'legacy-null') top.push(...fields, ['HostConfig', val(null)]);
    else {
      const inner = fields.filter(() => rnd() < 0.5);
      top.push(['HostConfig', struct(inner)], ...fields.filter((f) => !inner.includes(f)));
    }
    // Shuffle the top-level keys: order must not matter either.
    for (let i = top.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [top[i], top[j]] = [top[j]!, top[i]!];
    }
    return render(struct(top), rnd);
  });

// ---------------------------------------------------------------------------------------------

describeE2E('differential: the gateway reads bodies as dockerd 20.10 does', () => {
  let gw: Gateway;
  let pools: Pools;
  let ctx: DaemonContext;
  let token: string;
  const volumesToRemove = new Set<string>();
  const stats = { created: 0, refusedByGateway: 0, refusedByDaemon: 0, execsCompared: 0, updatesCompared: 0 };

  /** An answer no comparison can come from: the permissive policy denying, or a server fault. */
  function unexpected(r: { status: number; text: string }): string[] {
    return r.status === 403 || r.status >= 500 ? [`unexpected ${r.status} through the gateway: ${r.text}`] : [];
  }
  let caseCounter = 0;
  let currentCase = '';

  const viaGateway = (method: string, urlPath: string, body?: string | Buffer): Promise<HttpAnswer> => {
    const headers: http.OutgoingHttpHeaders = { Authorization: `Bearer ${token}` };
    if (body !== undefined) Object.assign(headers, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    const u = new URL(gw.url);
    return httpCall({ host: u.hostname, port: u.port, method, path: urlPath, headers }, body);
  };

  async function removeContainer(id: string): Promise<void> {
    const r = await daemon('DELETE', `/containers/${id}?force=1&v=1`);
    if (r.status !== 204 && r.status !== 404) throw new Error(`removing ${id}: ${r.status} ${r.text}`);
  }

  async function removeVolumes(): Promise<void> {
    for (const v of volumesToRemove) {
      const r = await daemon('DELETE', `/volumes/${v}?force=1`);
      if (r.status === 204 || r.status === 404) volumesToRemove.delete(v);
    }
  }

  beforeAll(async () => {
    const scratch = await scratchDir();
    await mkdir(path.join(scratch, 'a'), { recursive: true });
    await mkdir(path.join(scratch, 'b'), { recursive: true });
    await mkdir(path.join(scratch, 'x'), { recursive: true });
    gw = await startGateway({ policyYaml: PERMISSIVE_POLICY });
    token = gw.token('differ', ['ci']);
    const base = uniqueName('dwbase');
    const b = await daemon('POST', `/containers/create?name=${base}`, JSON.stringify({ Image: TEST_IMAGE, Labels: { [TEST_LABEL_KEY]: RUN_ID }, HostConfig: { NetworkMode: 'none' } }));
    expect(b.status, b.text).toBe(201);
    const baseline = await daemon('GET', `/containers/${base}/json`);
    const info = await daemon('GET', '/info');
    ctx = {
      baselineMasked: baseline.json.HostConfig.MaskedPaths,
      baselineReadonly: baseline.json.HostConfig.ReadonlyPaths,
      defaultRuntime: info.json.DefaultRuntime,
      cgroupnsDefaultHost: info.json.CgroupVersion === '1',
    };
    pools = { scratch, base };
  });

  afterAll(async () => {
    await removeVolumes();
    console.info(`[differential] create bodies: ${JSON.stringify(stats)}`);
  });

  /** One create body through the gateway; the disagreements between the two readings. */
  async function createCase(text: string | Buffer): Promise<{ outcome: 'created' | 'refused-by-gateway' | 'refused-by-daemon'; problems: string[]; message: string }> {
    const name = uniqueName('diff');
    currentCase = name;
    const read = readDockerJson(typeof text === 'string' ? Buffer.from(text, 'utf8') : text);
    const ours = read.ok ? deriveFacts({ action: 'container.create', body: read.value })! : read;
    const r = await viaGateway('POST', `/v1.41/containers/create?name=${name}`, text);
    const problems: string[] = [];
    const message: string = r.json?.message ?? r.text;
    let outcome: 'created' | 'refused-by-gateway' | 'refused-by-daemon';
    if (r.status === 201) {
      outcome = 'created';
      stats.created++;
      const inspect = await daemon('GET', `/containers/${r.json.Id}/json`);
      for (const m of inspect.json.Mounts ?? []) if (m.Type === 'volume' && !hexId.test(m.Name)) volumesToRemove.add(m.Name);
      if (!ours.ok) problems.push(`the daemon created a container from a body the gateway's reader refuses (${ours.reason})`);
      else problems.push(...(await disagreements(ours.facts, inspect.json, ctx)));
      await removeContainer(r.json.Id);
    } else if (r.status === 400 && message.startsWith('dockward: ')) {
      outcome = 'refused-by-gateway';
      stats.refusedByGateway++;
      if (ours.ok) problems.push(`the gateway refused a body its reader accepts: ${message}`);
    } else {
      outcome = 'refused-by-daemon';
      stats.refusedByDaemon++;
      if (r.status === 403) problems.push(`the permissive policy denied: ${message}`);
    }
    if (outcome !== 'created') {
      const gone = await daemon('GET', `/containers/${name}/json`);
      if (gone.status !== 404) {
        problems.push(`a refused create left a container behind (${gone.status})`);
        await removeContainer(name);
      }
    }
    await removeVolumes();
    return { outcome, problems, message };
  }

  describe('container create: chosen spellings', () => {
    const L = `"Labels":{"${TEST_LABEL_KEY}":"${RUN_ID}"}`;
    const I = `"Image":"${TEST_IMAGE}",${L}`;
    it.each([
      ['case variants of every key', `{"iMaGe":"${TEST_IMAGE}","LABELS":{"${TEST_LABEL_KEY}":"${RUN_ID}"},"hostconfig":{"PRIVILEGED":true,"capadd":["net_admin"],"bInDs":["/etc:/x:ro"]}}`, 'created'],
      ['legacy top-level Privileged', `{${I},"Privileged":true}`, 'created'],
      ['legacy Privileged beside an empty HostConfig (ignored)', `{${I},"Privileged":true,"HostConfig":{}}`, 'created'],
      ['legacy Privileged beside a null HostConfig (honoured)', `{${I},"Privileged":true,"HostConfig":null}`, 'created'],
      ['legacy Memory merged into HostConfig', `{${I},"Memory":16777216,"HostConfig":{"NetworkMode":"none"}}`, 'created'],
      ['legacy Binds and CapAdd', `{${I},"Binds":["/etc:/x:ro"],"CapAdd":"sys_admin"}`, 'created'],
      ['a long-s Binds key', `{${I},"HostConfig":{"Bind\u017f":["/etc:/x"]}}`, 'created'],
      ['a Kelvin-sign MaskedPaths key (Go folds it onto k)', `{${I},"HostConfig":{"NetworkMode":"none","Mas\u212AedPaths":[]}}`, 'created'],
      ['a dotless-i Privileged key (not matched, ignored)', `{${I},"HostConfig":{"Priv\u0131leged":true}}`, 'created'],
      ['an escaped key', `{${I},"HostConfig":{"Privil\\u0065ged":true}}`, 'created'],
      ['Mounts and Binds together', `{${I},"HostConfig":{"Binds":["/etc:/b:ro"],"Mounts":[{"Type":"bind","Source":"/var","Target":"/m"},{"Type":"tmpfs","Target":"/t"}]}}`, 'created'],
      ['a bind escaping with ..', `{${I},"HostConfig":{"Binds":["/srv/../etc:/x"]}}`, 'created'],
      ['cap spellings', `{${I},"HostConfig":{"CapAdd":["cap_sys_admin","CAP_NET_ADMIN","sys_ptrace","cap_\u017fyslog"]}}`, 'created'],
      ['MaskedPaths: []', `{${I},"HostConfig":{"MaskedPaths":[]}}`, 'created'],
      ['MaskedPaths: null', `{${I},"HostConfig":{"MaskedPaths":null}}`, 'created'],
      ['security options in both separators', `{${I},"HostConfig":{"SecurityOpt":["seccomp:unconfined","label=disable","no-new-privileges"]}}`, 'created'],
      ['an inline seccomp profile', `{${I},"HostConfig":{"SecurityOpt":["seccomp={\\"defaultAction\\":\\"SCMP_ACT_ALLOW\\"}"]}}`, 'created'],
      ['a lone surrogate escape in a bind path (U+FFFD in both readings)', `{${I},"HostConfig":{"Binds":["SCRATCH/\\ud800x:/x"]}}`, 'created'],
      ['every namespace', `{${I},"HostConfig":{"PidMode":"host","IpcMode":"host","UTSMode":"host","NetworkMode":"host","UsernsMode":"host","CgroupnsMode":"host"}}`, 'created'],
      ['the host network by its ID prefix is not the host namespace', `{${I},"HostConfig":{"NetworkMode":"HOSTNETID"}}`, 'created'],
      ['a null HostConfig', `{${I},"HostConfig":null}`, 'created'],
      ['null everywhere', `{${I},"User":null,"HostConfig":{"Privileged":null,"CapAdd":null,"Binds":null,"Mounts":null,"SecurityOpt":null,"Memory":null}}`, 'created'],
      ['a duplicate HostConfig (dockerd merges it into a privileged container)', `{${I},"HostConfig":{"Privileged":true},"HostConfig":{"NetworkMode":"none"}}`, 'refused-by-gateway'],
      ['two spellings of Privileged', `{${I},"HostConfig":{"Privileged":false,"privileged":true}}`, 'refused-by-gateway'],
      ['trailing data (dockerd ignores it)', `{${I}} {"HostConfig":{"Privileged":true}}`, 'refused-by-gateway'],
      ['a string where dockerd wants a bool', `{${I},"HostConfig":{"Privileged":"true"}}`, 'refused-by-gateway'],
      ['a fraction where dockerd wants an integer', `{${I},"HostConfig":{"Memory":1.5}}`, 'refused-by-gateway'],
      // Go refuses an exponent in an int64 field; the gateway reads 15000000 and lets dockerd refuse it.
      ['an exponent where dockerd wants an integer (the daemon refuses it)', `{${I},"HostConfig":{"Memory":1.5e7}}`, 'refused-by-daemon'],
      ['an unknown mount type', `{${I},"HostConfig":{"Mounts":[{"Type":"BIND","Source":"/etc","Target":"/x"}]}}`, 'refused-by-gateway'],
    ])('%s', async (_n, template, expected) => {
      const hostNet = (await daemon('GET', '/networks/host')).json.Id as string;
      const text = template.replace('HOSTNETID', hostNet.slice(0, 10)).replace('SCRATCH', pools.scratch);
      const r = await createCase(text);
      expect(r.problems, `${text}\n${r.message}`).toEqual([]);
      expect(r.outcome, r.message).toBe(expected);
    });

    it('refuses bytes that are not UTF-8 (Go and a JavaScript decoder replace them differently)', async () => {
      const text = Buffer.concat([Buffer.from(`{${I},"HostConfig":{"Binds":["/tmp/`), Buffer.from([0xe2, 0x82]), Buffer.from(':/x"]}}')]);
      const r = await createCase(text);
      expect(r.problems).toEqual([]);
      expect(r.outcome).toBe('refused-by-gateway');
    });

    it.each([
      ['a duplicate HostConfig', `{${I},"HostConfig":{"Privileged":true},"HostConfig":{"NetworkMode":"none"}}`],
      ['two spellings of Privileged', `{${I},"HostConfig":{"Privileged":false,"privileged":true}}`],
    ])('why those are refused: sent straight to dockerd, %s creates a privileged container', async (_n, text) => {
      const r = await daemon('POST', `/containers/create?name=${uniqueName('direct')}`, text);
      expect(r.status, r.text).toBe(201);
      const inspect = await daemon('GET', `/containers/${r.json.Id}/json`);
      await removeContainer(r.json.Id);
      expect(inspect.json.HostConfig.Privileged).toBe(true);
      expect(JSON.parse(text).HostConfig.Privileged).not.toBe(true);
    });
  });

  it(`container create: generated spellings agree with the daemon (${Math.round(FUZZ_SECONDS * 0.6)} s)`, async () => {
    const before = { ...stats };
    await fc.assert(
      fc.asyncProperty(createArb(pools, () => `${RUN_ID}-${++caseCounter}`), async (text) => {
        const r = await createCase(text);
        if (r.problems.length > 0) throw new Error(`${r.problems.join('\n')}\nbody: ${text}`);
      }),
      { numRuns: 1_000_000, plugins: [fc.interruptAfterTimeLimit(FUZZ_MS * 0.6)], endOnFailure: true },
    );
    // Most generated bodies must reach the daemon and be compared, or the property proves little.
    expect(stats.created - before.created, JSON.stringify(stats)).toBeGreaterThan(5);
  }, FUZZ_MS + 120_000);

  describe('container exec', () => {
    let target = '';
    beforeAll(async () => {
      const name = uniqueName('dwexec');
      const c = await daemon('POST', `/containers/create?name=${name}`, JSON.stringify({ Image: TEST_IMAGE, Cmd: ['sleep', '300'], Labels: { [TEST_LABEL_KEY]: RUN_ID }, HostConfig: { NetworkMode: 'none' } }));
      expect(c.status, c.text).toBe(201);
      target = c.json.Id;
      const s = await daemon('POST', `/containers/${target}/start`);
      expect(s.status, s.text).toBe(204);
    });

    async function execCase(text: string): Promise<string[]> {
      const read = readDockerJson(text);
      const ours = read.ok ? deriveFacts({ action: 'container.exec', body: read.value })! : read;
      const r = await viaGateway('POST', `/v1.41/containers/${target}/exec`, text);
      if (r.status === 201) {
        if (!ours.ok) return [`the daemon accepted an exec body the gateway's reader refuses (${ours.reason})`];
        const e = (await daemon('GET', `/exec/${r.json.Id}/json`)).json;
        const pc = e.ProcessConfig;
        stats.execsCompared++;
        const theirs = { 'exec.privileged': pc.privileged === true, 'exec.user': pc.user ?? '', 'exec.cmd': [pc.entrypoint, ...(pc.arguments ?? [])] };
        const mine = { ...ours.facts };
        return JSON.stringify(mine) === JSON.stringify(theirs) ? [] : [`gateway ${JSON.stringify(mine)}, daemon ${JSON.stringify(theirs)}`];
      }
      if (r.status === 400 && String(r.json?.message).startsWith('dockward: ')) return ours.ok ? [`the gateway refused a body its reader accepts: ${r.text}`] : [];
      return unexpected(r);
    }

    it.each([
      ['plain', '{"Cmd":["id","-u"]}'],
      ['case variants', '{"cmd":["id"],"PRIVILEGED":true,"uSeR":"0:0"}'],
      ['a long-s User key', '{"Cmd":["id"],"U\u017fer":"nobody"}'],
      ['null fields', '{"Cmd":["id"],"Privileged":null,"User":null}'],
      ['escapes in the command', '{"Cmd":["\\u0069d","\\ud800"]}'],
    ])('%s', async (_n, text) => {
      expect(await execCase(text)).toEqual([]);
    });

    it(`generated spellings agree with the daemon (${Math.round(FUZZ_SECONDS * 0.2)} s)`, async () => {
      const arb = fc.record({
        privileged: maybe(fc.boolean()),
        user: maybe(fc.constantFrom('', '0', 'nobody', '1000:1000')),
        cmd: fc.array(fc.constantFrom('id', 'sh', '-c', 'echo \u00e9', '/bin/true'), { minLength: 1, maxLength: 3 }),
        seed: fc.integer({ min: 1, max: 0x7fffffff }),
      }).map((s) => {
        const entries: [string, J][] = [['Cmd', list(s.cmd.map(val))]];
        if (s.privileged !== ABSENT) entries.push(['Privileged', val(s.privileged)]);
        if (s.user !== ABSENT) entries.push(['User', val(s.user)]);
        return render(struct(entries), prng(s.seed));
      });
      const before = stats.execsCompared;
      await fc.assert(
        fc.asyncProperty(arb, async (text) => {
          const problems = await execCase(text);
          if (problems.length > 0) throw new Error(`${problems.join('\n')}\nbody: ${text}`);
        }),
        { numRuns: 1_000_000, plugins: [fc.interruptAfterTimeLimit(FUZZ_MS * 0.2)], endOnFailure: true },
      );
      // Most generated bodies must reach the daemon and be compared, or the property proves little.
      expect(stats.execsCompared - before, JSON.stringify(stats)).toBeGreaterThan(5);
    }, FUZZ_MS + 60_000);
  });

  describe('container update', () => {
    async function updateCase(text: string): Promise<string[]> {
      const c = await daemon('POST', `/containers/create?name=${uniqueName('dwupd')}`, JSON.stringify({ Image: TEST_IMAGE, Labels: { [TEST_LABEL_KEY]: RUN_ID }, HostConfig: { NetworkMode: 'none' } }));
      expect(c.status, c.text).toBe(201);
      const id = c.json.Id as string;
      try {
        const read = readDockerJson(text);
        const ours = read.ok ? deriveFacts({ action: 'container.update', body: read.value })! : read;
        const r = await viaGateway('POST', `/v1.41/containers/${id}/update`, text);
        const hc = (await daemon('GET', `/containers/${id}/json`)).json.HostConfig;
        if (r.status === 200) {
          if (!ours.ok) return [`the daemon applied an update body the gateway's reader refuses (${ours.reason})`];
          stats.updatesCompared++;
          const theirs = { 'create.memory': hc.Memory, 'create.nanoCpus': hc.NanoCpus };
          return JSON.stringify({ ...ours.facts }) === JSON.stringify(theirs) ? [] : [`gateway ${JSON.stringify(ours.facts)}, daemon ${JSON.stringify(theirs)}`];
        }
        if (hc.Memory !== 0 || hc.NanoCpus !== 0) return [`a refused update changed the container (${r.status} ${r.text})`];
        if (r.status === 400 && String(r.json?.message).startsWith('dockward: ')) return ours.ok ? [`the gateway refused a body its reader accepts: ${r.text}`] : [];
        return unexpected(r);
      } finally {
        await removeContainer(id);
      }
    }

    it.each([
      ['Memory', '{"Memory":16777216}'],
      ['lower-case keys', '{"memory":16777216,"nanocpus":250000000}'],
      ['a long-s NanoCpus key', '{"NanoCpu\u017f":250000000}'],
      ['null', '{"Memory":null}'],
      ['two spellings (refused)', '{"Memory":16777216,"MEMORY":33554432}'],
    ])('%s', async (_n, text) => {
      expect(await updateCase(text)).toEqual([]);
    });

    it(`generated spellings agree with the daemon (${Math.round(FUZZ_SECONDS * 0.2)} s)`, async () => {
      const arb = fc.record({
        memory: maybe(fc.constantFrom(0, 8388608, 16777216)),
        nanoCpus: maybe(fc.constantFrom(0, 250000000)),
        seed: fc.integer({ min: 1, max: 0x7fffffff }),
      }).map((s) => {
        const entries: [string, J][] = [];
        if (s.memory !== ABSENT) entries.push(['Memory', val(s.memory)]);
        if (s.nanoCpus !== ABSENT) entries.push(['NanoCpus', val(s.nanoCpus)]);
        return render(struct(entries), prng(s.seed));
      });
      const before = stats.updatesCompared;
      await fc.assert(
        fc.asyncProperty(arb, async (text) => {
          const problems = await updateCase(text);
          if (problems.length > 0) throw new Error(`${problems.join('\n')}\nbody: ${text}`);
        }),
        { numRuns: 1_000_000, plugins: [fc.interruptAfterTimeLimit(FUZZ_MS * 0.2)], endOnFailure: true },
      );
      expect(stats.updatesCompared - before, JSON.stringify(stats)).toBeGreaterThan(5);
    }, FUZZ_MS + 60_000);
  });

  describe('legacy container start bodies (API < 1.24)', () => {
    it.each([
      ['top-level HostConfig fields', '{"Binds":["/etc:/hostetc:ro"],"CapAdd":["net_admin"],"Memory":16777216}'],
      ['a HostConfig object', '{"HostConfig":{"Binds":["/etc:/hostetc:ro"],"PidMode":"host"}}'],
      ['case variants', '{"binds":["/var:/v"],"SECURITYOPT":["seccomp:unconfined"]}'],
    ])('%s: the facts are the HostConfig dockerd stores', async (_n, text) => {
      const c = await daemon('POST', `/containers/create?name=${uniqueName('dwstart')}`, JSON.stringify({ Image: TEST_IMAGE, Cmd: ['true'], Labels: { [TEST_LABEL_KEY]: RUN_ID }, HostConfig: { NetworkMode: 'none' } }));
      expect(c.status, c.text).toBe(201);
      const id = c.json.Id as string;
      try {
        const read = readDockerJson(text);
        expect(read.ok).toBe(true);
        const ours = deriveFacts({ action: 'container.start', body: read.ok ? read.value : undefined, apiVersion: '1.23' })!;
        expect(ours.ok).toBe(true);
        let r = await viaGateway('POST', `/v1.23/containers/${id}/start`, text);
        if (r.status === 400 && String(r.json?.message).includes('no policy rule on container.start inspects')) {
          // The gateway refuses legacy start bodies unless its policy inspector is wired to
          // the policy (src/main.ts passes factNeeds); the reading is compared straight.
          expect((await daemon('GET', `/containers/${id}/json`)).json.HostConfig.Binds).toBeNull();
          r = await daemon('POST', `/v1.23/containers/${id}/start`, text);
        }
        expect([204, 500], r.text).toContain(r.status);
        const inspect = (await daemon('GET', `/containers/${id}/json`)).json;
        const d = await daemonReading(inspect, ctx);
        if (!ours.ok) return;
        const norm = (v: unknown) => (Array.isArray(v) ? [...new Set(v as string[])].sort() : v);
        for (const key of ['create.privileged', 'create.hostPaths', 'create.memory', 'create.securityOpt', 'create.unconfined']) {
          expect(norm(ours.facts[key]), key).toEqual(norm(d[key]));
        }
        expect([...(ours.facts['create.capAdd'] as string[])].sort()).toEqual([...(d['create.capAdd'] as string[])].sort());
        const ns = (d['create.hostNamespaces'] as string[]).filter((n) => n !== 'cgroup' || !ctx.cgroupnsDefaultHost);
        expect(ours.facts['create.hostNamespaces']).toEqual(ns);
      } finally {
        await removeContainer(id);
      }
    });
  });

  describe('what started containers really get', () => {
    async function runViaGateway(body: object): Promise<{ facts: Facts; output: string }> {
      const text = JSON.stringify({ Image: TEST_IMAGE, Labels: { [TEST_LABEL_KEY]: RUN_ID }, ...body });
      const read = readDockerJson(text);
      const ours = read.ok ? deriveFacts({ action: 'container.create', body: read.value })! : read;
      if (!ours.ok) throw new Error(ours.reason);
      const c = await viaGateway('POST', `/v1.41/containers/create?name=${uniqueName('dwrun')}`, text);
      expect(c.status, c.text).toBe(201);
      const id = c.json.Id as string;
      try {
        const s = await daemon('POST', `/containers/${id}/start`);
        expect(s.status, s.text).toBe(204);
        const w = await daemon('POST', `/containers/${id}/wait`);
        expect(w.json?.StatusCode, await logsOf(id)).toBe(0);
        return { facts: ours.facts, output: await logsOf(id) };
      } finally {
        await removeContainer(id);
      }
    }

    const CAP_BITS = ['CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP', 'LINUX_IMMUTABLE',
      'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER', 'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE',
      'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE', 'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE',
      'AUDIT_CONTROL', 'SETFCAP', 'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF', 'CHECKPOINT_RESTORE'];
    const capsOf = (output: string): Set<string> => {
      const m = /CapEff:\s*([0-9a-f]+)/.exec(output);
      const bits = BigInt(`0x${m![1]}`);
      return new Set(CAP_BITS.filter((_, i) => (bits >> BigInt(i)) & 1n));
    };
    let defaultCaps: Set<string>;
    beforeAll(async () => {
      defaultCaps = capsOf((await runViaGateway({ Cmd: ['grep', 'CapEff', '/proc/self/status'], HostConfig: { NetworkMode: 'none' } })).output);
    });

    it.each([
      ['sys_admin'],
      ['CAP_NET_ADMIN'],
      ['cap_sys_ptrace'],
      ['Cap_Net_Admin'],
      ['cap_\u017fys_adm\u0131n'],
    ])('capability spelling %s: the capabilities beyond the default set are exactly create.capAdd', async (spelling) => {
      const r = await runViaGateway({ Cmd: ['grep', 'CapEff', '/proc/self/status'], HostConfig: { NetworkMode: 'none', CapAdd: [spelling] } });
      const extra = [...capsOf(r.output)].filter((c) => !defaultCaps.has(c));
      expect(extra).toEqual(r.facts['create.capAdd']);
    });

    it.each([
      ['nothing shared', { NetworkMode: 'none' }],
      ['the host pid namespace', { NetworkMode: 'none', PidMode: 'host' }],
      ['the host network', { NetworkMode: 'host' }],
      ['the host network named by its ID (a private namespace, measured)', { NetworkMode: 'HOSTNETID' }],
      ['the host ipc and uts namespaces', { NetworkMode: 'none', IpcMode: 'host', UTSMode: 'host' }],
    ])('namespaces, %s: the ones the container shares with the host are exactly create.hostNamespaces', async (_n, hc) => {
      const hostNet = (await daemon('GET', '/networks/host')).json.Id as string;
      const hostConfig = Object.fromEntries(Object.entries(hc).map(([k, v]) => [k, v === 'HOSTNETID' ? hostNet : v]));
      const kinds = ['pid', 'net', 'ipc', 'uts'] as const;
      const r = await runViaGateway({ Cmd: ['sh', '-c', kinds.map((k) => `readlink /proc/self/ns/${k}`).join('; ')], HostConfig: hostConfig });
      const inside = r.output.trim().split('\n');
      const shared = kinds.filter((k, i) => inside[i] === readlinkSync(`/proc/self/ns/${k}`)).map((k) => (k === 'net' ? 'network' : k));
      const reported = (r.facts['create.hostNamespaces'] as string[]).filter((n) => n !== 'cgroup' && n !== 'userns');
      expect([...shared].sort()).toEqual([...reported].sort());
    });
  });

  it('leaves no container or volume behind', async () => {
    await removeVolumes();
    expect([...volumesToRemove]).toEqual([]);
    const left = await daemon('GET', `/containers/json?all=1&filters=${encodeURIComponent(JSON.stringify({ label: [`${TEST_LABEL_KEY}=${RUN_ID}`], name: ['diff-'] }))}`);
    expect(left.json.map((c: { Names: string[] }) => c.Names[0]), currentCase).toEqual([]);
  });
});

function withoutOwnership(labels: Record<string, string>): Record<string, string> {
  const { 'dockward.owner': _owner, 'dockward.team': _team, ...rest } = labels;
  return rest;
}
