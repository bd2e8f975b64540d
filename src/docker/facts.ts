/**
 * `create.*` and `exec.*` facts: what a request body will make dockerd do, normalised so that
 * one policy rule covers every spelling the daemon accepts.
 *
 * The body has already been read by docker/json.ts (Go's key folding, no duplicates, no
 * trailing data). This module reads it the way dockerd 20.10 (API 1.41) fills its Go structs,
 * and then the way the daemon interprets those structs. Every rule below was measured against
 * dockerd 20.10.24; test/e2e/differential.test.ts keeps measuring it.
 *
 * - Keys match Go struct fields case-insensitively (docker/json.ts `goFoldKey`).
 * - `null` and an absent field are the same: Go leaves the zero value (`false`, `""`, nil).
 * - A value of the wrong JSON type for its Go field (`"Privileged": "true"`) makes Go's
 *   decoder fail and dockerd answer 400; the deriver refuses such a body too, saying why.
 * - container create bodies are `runconfig.ContainerConfigWrapper`: `container.Config` and,
 *   DEPRECATED but still honoured, every `HostConfig` field at the top level. `getHostConfig`
 *   uses the top-level HostConfig fields when the body has no (or a null) `HostConfig`
 *   object; when it has one, only Memory, MemorySwap, CpuShares, CpusetCpus and VolumeDriver
 *   are taken from the top level (and only where the inner object leaves them zero).
 *   So `{"Image":"x","Privileged":true}` creates a privileged container, and
 *   `{"Image":"x","Privileged":true,"HostConfig":{}}` does not.
 * - A legacy `container.start` body (API < 1.24, more than 7 bytes) is decoded with the same
 *   wrapper, and its HostConfig REPLACES the container's - it persists even when the start fails.
 *
 * A fact that cannot be read without guessing is either a refusal of the whole body (its
 * shape is not one dockerd accepts) or, where dockerd's reading depends on its own state (an
 * image reference that may be an image ID prefix), the value INDETERMINATE: allow rules that
 * read it never match, deny rules that read it always do.
 */
import { goFoldEquals, goFoldKey } from './json.js';

/** A fact whose value depends on the daemon's state: conditions on it are indeterminate. */
export const INDETERMINATE: unique symbol = Symbol('dockward.indeterminate');

export type Facts = Record<string, unknown>;
export type FactsResult = { readonly ok: true; readonly facts: Facts } | { readonly ok: false; readonly reason: string };

export interface FactsRequest {
  readonly action: string;
  /** The body read by readDockerJson; undefined when there is none (or dockerd ignores it). */
  readonly body: unknown;
  /** `1.23` for `/v1.23/...`; undefined for an unversioned path (the daemon's current API). */
  readonly apiVersion?: string;
}

/** Actions whose body this module derives facts from. */
export const FACT_ACTIONS: ReadonlySet<string> = new Set([
  'container.create',
  'container.start',
  'container.update',
  'container.exec',
  'service.create',
  'service.update',
  'volume.create',
]);

/**
 * Facts for one request, or a refusal; undefined for an action without derived facts.
 * Pure and total: never throws.
 */
export function deriveFacts(req: FactsRequest): FactsResult | undefined {
  if (!FACT_ACTIONS.has(req.action)) return undefined;
  try {
    switch (req.action) {
      case 'container.create':
        return ok(containerCreateFacts(req.body));
      case 'container.start':
        return ok(containerStartFacts(req.body));
      case 'container.update':
        return ok(containerUpdateFacts(req.body));
      case 'container.exec':
        return ok(execFacts(req.body));
      case 'service.create':
      case 'service.update':
        return ok(serviceFacts(req.body));
      case 'volume.create':
        return ok(volumeFacts(req.body));
    }
  } catch (err) {
    if (err instanceof ShapeError) return { ok: false, reason: err.message };
    return { ok: false, reason: 'the body could not be read' };
  }
  return undefined;
}

function ok(facts: Facts): FactsResult {
  return { ok: true, facts };
}

/**
 * Does dockerd read the body of `POST /containers/{id}/start`? moby
 * api/server/router/container/container_routes.go postContainersStart: only when
 * `r.ContentLength > 7` (or unknown, i.e. chunked) - "a non-nil json object is at least 7
 * characters" - and only below API 1.24; from 1.24 on such a body is a 400. The gateway
 * forwards the inspected bytes with a Content-Length, so `bodyLength` is what dockerd sees.
 */
export function legacyStartBodyIsRead(apiVersion: string | undefined, bodyLength: number): boolean {
  return bodyLength > 7 && apiVersionBelow(apiVersion, 1, 24);
}

/** `/v1.23` is below 1.24; an unversioned request is the daemon's current version, below nothing. */
export function apiVersionBelow(apiVersion: string | undefined, major: number, minor: number): boolean {
  if (apiVersion === undefined) return false;
  const m = /^(\d+)\.(\d+)$/.exec(apiVersion);
  if (m === null) return false;
  const a = Number(m[1]);
  const b = Number(m[2]);
  return a < major || (a === major && b < minor);
}

// ---------------------------------------------------------------------------------------------
// Reading Go-typed fields out of the decoded body.

class ShapeError extends Error {}

type Obj = Record<string, unknown>;

const hasOwn = Object.prototype.hasOwnProperty;

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'number') return 'a number';
  if (typeof v === 'boolean') return 'a boolean';
  return typeof v;
}

function mismatch(path: string, want: string, v: unknown): never {
  throw new ShapeError(`${path} is ${kind(v)} where dockerd expects ${want} (dockerd would refuse this body)`);
}

/** Field names folded once, at load time. */
const FOLDED = new Map<string, string>();
function folded(name: string): string {
  let f = FOLDED.get(name);
  if (f === undefined) {
    f = goFoldKey(name);
    FOLDED.set(name, f);
  }
  return f;
}

/** The value of struct field `name` in `o`, matched as Go matches keys; undefined when absent or null. */
function field(o: Obj | undefined, name: string): unknown {
  if (o === undefined) return undefined;
  const f = folded(name);
  let found: unknown = undefined;
  let count = 0;
  for (const k in o) {
    if (hasOwn.call(o, k) && goFoldEquals(k, f)) {
      found = o[k];
      count++;
    }
  }
  // docker/json.ts refuses such bodies; a caller that built one by hand gets a refusal too.
  if (count > 1) throw new ShapeError(`${name} is spelled more than once (dockerd would merge the spellings)`);
  return found === null ? undefined : found;
}

function asObj(v: unknown, path: string): Obj | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) return mismatch(path, 'an object', v);
  return v as Obj;
}

function asBool(v: unknown, path: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') return mismatch(path, 'a boolean', v);
  return v;
}

function asString(v: unknown, path: string): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') return mismatch(path, 'a string', v);
  return v;
}

function asInt(v: unknown, path: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v)) return mismatch(path, 'an integer', v);
  return v;
}

function asList(v: unknown, path: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) return mismatch(path, 'a list', v);
  return v;
}

/**
 * A list of strings. A single string is read as a one-item list: Docker's `strslice.StrSlice`
 * (CapAdd, Cmd, Entrypoint) accepts both; where the Go field is a plain []string, Go refuses
 * the string form and the request never reaches anything. A null item is "" in Go.
 */
function asStrings(v: unknown, path: string): string[] {
  if (typeof v === 'string') return [v];
  return asList(v, path).map((item, i) => asString(item, `${path}[${i}]`));
}

/** map[string]string: a null value is "" in Go. */
function asStringMap(v: unknown, path: string): Record<string, string> {
  const o = asObj(v, path);
  const out: Record<string, string> = Object.create(null);
  if (o === undefined) return out;
  for (const k in o) if (hasOwn.call(o, k)) out[k] = asString(o[k], `${path}.${k}`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Normalisation.

/**
 * Go's strings.ToUpper, which the daemon applies to CapAdd items
 * (oci/caps NormalizeLegacyCapabilities): Unicode simple upper-casing, rune by rune. It maps
 * U+017F (long s) to S and U+0131 (dotless i) to I, so `cap_ſys_admın` IS CAP_SYS_ADMIN for
 * dockerd (measured: the container gets the capability). JavaScript's toUpperCase agrees rune
 * by rune except where it expands one rune into several (ß -> SS); Go keeps those runes.
 */
export function goToUpper(s: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(s)) return s.toUpperCase();
  let out = '';
  for (const ch of s) {
    const up = ch.toUpperCase();
    out += [...up].length === 1 ? up : ch;
  }
  return out;
}

/** A capability as policies name it: upper case, without `CAP_`; `ALL` stays `ALL`. */
export function normaliseCapability(raw: string): string {
  const up = goToUpper(raw);
  return up.startsWith('CAP_') ? up.slice(4) : up;
}

/** Go's path.Clean for an absolute path; a relative path is returned unchanged. */
export function cleanHostPath(p: string): string {
  if (!p.startsWith('/')) return p;
  const out: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return `/${out.join('/')}`;
}

// distribution/reference grammar, as vendored by dockerd 20.10.
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*(?::[0-9]+)?`;
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*';
const REFERENCE = new RegExp(
  `^((?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*)(?::([\\w][\\w.-]{0,127}))?(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$`,
);
const ANCHORED_PATH = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
/**
 * dockerd looks an image up by name first and, when no image has that name, by image ID
 * prefix (daemon/images GetImage: imageStore.Search). A reference made only of hex digits
 * (`d2c94e25`), or `sha256:<hex>`, may therefore name an image by ID, whatever the policy's
 * name patterns say: the gateway cannot know which without asking the daemon.
 */
const MAY_BE_IMAGE_ID = /^(?:sha256:)?[0-9a-f]{1,64}$/;

/**
 * An image reference in its familiar, tagged form - the form `docker images` shows:
 * `busybox` -> `busybox:latest`, `docker.io/library/busybox:1` -> `busybox:1`,
 * `index.docker.io/foo/bar` -> `foo/bar:latest`, `registry:5000/x@sha256:...` unchanged.
 * INDETERMINATE when the daemon's reading depends on its state (an image ID or ID prefix) or
 * the reference does not parse (the daemon refuses those; a rule must not guess).
 */
export function normaliseImage(raw: string): string | typeof INDETERMINATE {
  if (raw === '') return '';
  if (MAY_BE_IMAGE_ID.test(raw)) return INDETERMINATE;
  const m = REFERENCE.exec(raw);
  if (m === null) return INDETERMINATE;
  const name = m[1]!;
  const tag = m[2];
  const digest = m[3];
  // splitDockerDomain: the first component is a registry when it has a "." or ":" or is localhost.
  const slash = name.indexOf('/');
  let domain: string;
  let remainder: string;
  if (slash === -1 || (!/[.:]/.test(name.slice(0, slash)) && name.slice(0, slash) !== 'localhost')) {
    domain = 'docker.io';
    remainder = name;
  } else {
    domain = name.slice(0, slash);
    remainder = name.slice(slash + 1);
  }
  if (domain === 'index.docker.io') domain = 'docker.io';
  if (domain === 'docker.io' && !remainder.includes('/')) remainder = `library/${remainder}`;
  if (!ANCHORED_PATH.test(remainder) || domain.length + 1 + remainder.length > 255) return INDETERMINATE;
  let familiar = domain === 'docker.io' ? remainder : `${domain}/${remainder}`;
  if (domain === 'docker.io' && remainder.startsWith('library/') && remainder.indexOf('/', 8) === -1) familiar = remainder.slice(8);
  if (tag !== undefined) familiar += `:${tag}`;
  if (digest !== undefined) familiar += `@${digest}`;
  if (tag === undefined && digest === undefined) familiar += ':latest';
  return familiar;
}

// ---------------------------------------------------------------------------------------------
// Collecting list facts without duplicates, in order of appearance.

class Collector {
  private readonly items: string[] = [];
  private readonly seen = new Set<string>();
  add(s: string): void {
    if (!this.seen.has(s)) {
      this.seen.add(s);
      this.items.push(s);
    }
  }
  list(): string[] {
    return this.items;
  }
}

// ---------------------------------------------------------------------------------------------
// HostConfig.

/** Where the effective HostConfig's fields come from (runconfig getHostConfig). */
interface HostConfigSource {
  get(name: string): unknown;
  path(name: string): string;
}

/** HostConfig fields that getHostConfig copies from the top level into a present inner HostConfig. */
const MERGED_FROM_TOP = new Set(['Memory', 'MemorySwap', 'CpuShares', 'CpusetCpus', 'VolumeDriver']);

function wrapperHostConfig(top: Obj | undefined): HostConfigSource {
  const inner = asObj(field(top, 'HostConfig'), 'HostConfig');
  if (inner === undefined) {
    return { get: (name) => field(top, name), path: (name) => name };
  }
  return {
    get(name) {
      const v = field(inner, name);
      if (!MERGED_FROM_TOP.has(name)) return v;
      const zero = v === undefined || v === 0 || v === '';
      return zero ? field(top, name) ?? v : v;
    },
    path: (name) => `HostConfig.${name}`,
  };
}

/** Valid mount types for HostConfig.Mounts on Linux (moby volume/mounts/linux_parser.go). */
const MOUNT_TYPES = new Set(['bind', 'volume', 'tmpfs']);

interface MountFacts {
  hostPaths: Collector;
  volumes: Collector;
}

/**
 * One `HostConfig.Mounts` / `ContainerSpec.Mounts` item. A `volume` mount whose driver options
 * name a `device` mounts that device or directory from the host (the local driver's
 * `type=none,o=bind,device=/etc` is a bind mount of /etc, created on the fly at container
 * create): its device counts as a host path, whatever the driver.
 */
function readMount(m: unknown, path: string, out: MountFacts): void {
  const mount = asObj(m, path);
  const type = asString(field(mount, 'Type'), `${path}.Type`);
  const source = asString(field(mount, 'Source'), `${path}.Source`);
  if (!MOUNT_TYPES.has(type)) {
    throw new ShapeError(`${path}.Type ${JSON.stringify(type)} is not a mount type the gateway can inspect (bind, volume, tmpfs)`);
  }
  if (type === 'bind') out.hostPaths.add(cleanHostPath(source));
  if (type === 'volume') {
    if (source !== '') out.volumes.add(source);
    const vo = asObj(field(mount, 'VolumeOptions'), `${path}.VolumeOptions`);
    const driver = asObj(field(vo, 'DriverConfig'), `${path}.VolumeOptions.DriverConfig`);
    readDriverOptions(field(driver, 'Options'), `${path}.VolumeOptions.DriverConfig.Options`, out.hostPaths);
  }
}

/** Volume driver options: `device` is a host path (or device) the volume mounts. Option names are map keys: exact. */
function readDriverOptions(v: unknown, path: string, hostPaths: Collector): void {
  const opts = asStringMap(v, path);
  if (hasOwn.call(opts, 'device')) hostPaths.add(cleanHostPath(opts.device!));
}

/**
 * A `Binds` item as the daemon parses it (volume/mounts/linux_parser.go ParseMountRaw):
 * `dst` alone is an anonymous volume; `src:dst[:mode]` with an absolute `src` binds that
 * host path (cleaned: `/srv/ci/../../etc` is /etc), otherwise `src` names a volume. A spec
 * the daemon refuses (more than two `:`) still counts its first part, to err on the safe side.
 */
export function parseBind(spec: string): { hostPath?: string; volume?: string } {
  const parts = spec.split(':');
  if (parts.length < 2 || parts[0] === '') return {};
  const src = parts[0]!;
  return src.startsWith('/') ? { hostPath: cleanHostPath(src) } : { volume: src };
}

/** Namespace modes that share the host's namespace or join another container's. */
function namespaceShared(kindName: string, mode: string): boolean {
  switch (kindName) {
    case 'network':
      // "host" (exactly: the daemon compares the string) and "container:<id>" share a network
      // stack; bridge, none, default and user-defined networks do not. Measured: naming the
      // host network by its ID or an ID prefix gives a private network namespace.
      return mode === 'host' || mode.startsWith('container:');
    case 'ipc':
      return !(mode === '' || mode === 'private' || mode === 'shareable' || mode === 'none');
    case 'cgroup':
      return !(mode === '' || mode === 'private');
    default:
      // pid, uts, userns: the only values besides "" are host and container:<id>; anything
      // else is refused by the daemon, and counted here rather than trusted.
      return mode !== '';
  }
}

const NAMESPACE_FIELDS: readonly (readonly [string, string])[] = [
  ['PidMode', 'pid'],
  ['IpcMode', 'ipc'],
  ['UTSMode', 'uts'],
  ['NetworkMode', 'network'],
  ['UsernsMode', 'userns'],
  ['CgroupnsMode', 'cgroup'],
];

interface SecurityOptReading {
  normalised: string[];
  loosens: boolean;
}

/**
 * HostConfig.SecurityOpt as daemon/daemon_unix.go parseSecurityOpt reads it: `disable` alone
 * is `label=disable`; `key=value`, or the deprecated `key:value` when there is no `=`.
 * Loosening: seccomp with any non-empty value (`unconfined`, or a profile that replaces the
 * default - given inline as JSON), apparmor with any non-empty value (unconfined or another
 * profile), any label option (disable, or a replaced user/role/type/level), and
 * `systempaths=unconfined` (a CLI option the daemon itself refuses; counted all the same).
 */
export function readSecurityOpts(opts: readonly string[]): SecurityOptReading {
  const normalised: string[] = [];
  let loosens = false;
  for (const opt of opts) {
    if (opt === 'no-new-privileges') {
      normalised.push(opt);
      continue;
    }
    if (opt === 'disable') {
      normalised.push('label=disable');
      loosens = true;
      continue;
    }
    const sep = opt.includes('=') ? '=' : opt.includes(':') ? ':' : undefined;
    if (sep === undefined) {
      // The daemon refuses it ("invalid --security-opt 1").
      normalised.push(opt);
      continue;
    }
    const at = opt.indexOf(sep);
    const key = opt.slice(0, at);
    const value = opt.slice(at + 1);
    normalised.push(`${key}=${value}`);
    if (key === 'label' || key === 'systempaths') loosens = true;
    else if ((key === 'seccomp' || key === 'apparmor') && value !== '') loosens = true;
  }
  return { normalised, loosens };
}

/**
 * Published host ports, collected as ranges: a body of many `0-65535` ranges must not cost
 * 65536 steps each. 0 stands for "a port the daemon picks".
 */
class PortSet {
  private readonly ranges: [number, number][] = [];
  add(start: number, end = start): void {
    this.ranges.push([start, end]);
  }
  /** Every port once, ascending; at most 65536 numbers however many ranges were added. */
  list(): number[] {
    const sorted = [...this.ranges].sort((a, b) => a[0] - b[0]);
    const out: number[] = [];
    let next = 0;
    for (const [start, end] of sorted) {
      for (let p = Math.max(start, next); p <= end; p++) out.push(p);
      next = Math.max(next, end + 1);
    }
    return out;
  }
}

/** HostPort as the daemon reads it (go-connections nat.ParsePortRange); "" is a port the daemon picks. */
function readHostPort(raw: string, path: string, ports: PortSet): void {
  if (raw === '') {
    ports.add(0);
    return;
  }
  const parts = raw.split('-');
  const num = (s: string | undefined): number => {
    // strconv.ParseUint(s, 10, 16): decimal digits only, at most 65535.
    if (s === undefined || !/^[0-9]+$/.test(s) || Number(s) > 65535) {
      throw new ShapeError(`${path} ${JSON.stringify(raw)} is not a port or port range`);
    }
    return Number(s);
  };
  const start = num(parts[0]);
  // ParsePortRange reads the first two parts of a split on "-" and ignores the rest.
  const end = parts.length === 1 ? start : num(parts[1]);
  if (end < start) throw new ShapeError(`${path} ${JSON.stringify(raw)} is not a port range`);
  ports.add(start, end);
}

/** The facts a HostConfig determines (container create, legacy start). */
function hostConfigFacts(hc: HostConfigSource, facts: Facts): void {
  const get = (name: string) => hc.get(name);
  const at = (name: string) => hc.path(name);

  const privileged = asBool(get('Privileged'), at('Privileged'));
  facts['create.privileged'] = privileged;

  const caps = new Collector();
  for (const c of asStrings(get('CapAdd'), at('CapAdd'))) caps.add(normaliseCapability(c));
  // API 1.40's HostConfig.Capabilities replaced the whole set; 20.10 ignores it (measured),
  // a 19.03 daemon honours it. Counted as added either way.
  for (const c of asStrings(get('Capabilities'), at('Capabilities'))) caps.add(normaliseCapability(c));
  facts['create.capAdd'] = caps.list();

  const mounts: MountFacts = { hostPaths: new Collector(), volumes: new Collector() };
  asStrings(get('Binds'), at('Binds')).forEach((spec) => {
    const b = parseBind(spec);
    if (b.hostPath !== undefined) mounts.hostPaths.add(b.hostPath);
    if (b.volume !== undefined) mounts.volumes.add(b.volume);
  });
  asList(get('Mounts'), at('Mounts')).forEach((m, i) => readMount(m, `${at('Mounts')}[${i}]`, mounts));
  facts['create.hostPaths'] = mounts.hostPaths.list();
  facts['create.volumes'] = mounts.volumes.list();

  const devices = new Collector();
  asList(get('Devices'), at('Devices')).forEach((d, i) => {
    const dev = asObj(d, `${at('Devices')}[${i}]`);
    devices.add(asString(field(dev, 'PathOnHost'), `${at('Devices')}[${i}].PathOnHost`));
  });
  asList(get('DeviceRequests'), at('DeviceRequests')).forEach((d, i) => {
    const path = `${at('DeviceRequests')}[${i}]`;
    const req = asObj(d, path);
    const driver = asString(field(req, 'Driver'), `${path}.Driver`);
    const capSets = asList(field(req, 'Capabilities'), `${path}.Capabilities`).map((set, j) => asStrings(set, `${path}.Capabilities[${j}]`).join('+'));
    devices.add(`request:${driver}${capSets.length > 0 ? `:${capSets.join('|')}` : ''}`);
  });
  for (const rule of asStrings(get('DeviceCgroupRules'), at('DeviceCgroupRules'))) devices.add(`rule:${rule}`);
  facts['create.devices'] = devices.list();

  const namespaces: string[] = [];
  for (const [name, ns] of NAMESPACE_FIELDS) {
    if (namespaceShared(ns, asString(get(name), at(name)))) namespaces.push(ns);
  }
  facts['create.hostNamespaces'] = namespaces;

  const sec = readSecurityOpts(asStrings(get('SecurityOpt'), at('SecurityOpt')));
  // The daemon itself disables SELinux labelling for privileged containers and for the host
  // pid or ipc namespace (daemon/create.go: `label=disable` is appended; measured).
  const pidHost = asString(get('PidMode'), at('PidMode')) === 'host';
  const ipcHost = asString(get('IpcMode'), at('IpcMode')) === 'host';
  if (privileged || pidHost || ipcHost) {
    if (!sec.normalised.includes('label=disable')) sec.normalised.push('label=disable');
    sec.loosens = true;
  }
  facts['create.securityOpt'] = sec.normalised;
  // Any list, even an empty one, replaces the daemon's masked / read-only /proc paths
  // (daemon/oci_linux.go applies a non-nil list as given). Only null or absence keeps them.
  const masksOverridden = get('MaskedPaths') !== undefined || get('ReadonlyPaths') !== undefined;
  asStrings(get('MaskedPaths'), at('MaskedPaths'));
  asStrings(get('ReadonlyPaths'), at('ReadonlyPaths'));
  facts['create.unconfined'] = privileged || sec.loosens || masksOverridden;

  facts['create.sysctls'] = Object.keys(asStringMap(get('Sysctls'), at('Sysctls')));
  facts['create.cgroupParent'] = asString(get('CgroupParent'), at('CgroupParent'));
  facts['create.runtime'] = asString(get('Runtime'), at('Runtime'));
  // `<container>[:ro|rw]`: the container whose volumes (host binds included) are inherited.
  facts['create.volumesFrom'] = asStrings(get('VolumesFrom'), at('VolumesFrom')).map((v) => v.split(':')[0]!);

  const ports = new PortSet();
  const bindings = asObj(get('PortBindings'), at('PortBindings'));
  if (bindings !== undefined) {
    for (const port in bindings) {
      if (!hasOwn.call(bindings, port)) continue;
      const path = `${at('PortBindings')}.${port}`;
      asList(bindings[port], path).forEach((b, i) => {
        const binding = asObj(b, `${path}[${i}]`);
        readHostPort(asString(field(binding, 'HostPort'), `${path}[${i}].HostPort`), `${path}[${i}].HostPort`, ports);
      });
    }
  }
  if (asBool(get('PublishAllPorts'), at('PublishAllPorts'))) ports.add(0);
  facts['create.publishedPorts'] = ports.list();

  facts['create.memory'] = asInt(get('Memory'), at('Memory'));
  facts['create.nanoCpus'] = asInt(get('NanoCpus'), at('NanoCpus'));
}

// ---------------------------------------------------------------------------------------------
// Per action.

function topObject(body: unknown): Obj | undefined {
  return asObj(body, 'the body');
}

function containerCreateFacts(body: unknown): Facts {
  const top = topObject(body);
  const facts: Facts = Object.create(null);
  facts['create.image'] = normaliseImage(asString(field(top, 'Image'), 'Image'));
  facts['create.user'] = asString(field(top, 'User'), 'User');
  facts['create.labels'] = asStringMap(field(top, 'Labels'), 'Labels');
  hostConfigFacts(wrapperHostConfig(top), facts);
  return facts;
}

/** The legacy start body is decoded as the create wrapper and only its HostConfig is used. */
function containerStartFacts(body: unknown): Facts {
  const facts: Facts = Object.create(null);
  hostConfigFacts(wrapperHostConfig(topObject(body)), facts);
  return facts;
}

/**
 * `container.UpdateConfig`: the Resources fields at the top level, plus RestartPolicy.
 * The daemon applies only resource limits on update (not devices or the cgroup parent).
 */
function containerUpdateFacts(body: unknown): Facts {
  const top = topObject(body);
  const facts: Facts = Object.create(null);
  facts['create.memory'] = asInt(field(top, 'Memory'), 'Memory');
  facts['create.nanoCpus'] = asInt(field(top, 'NanoCpus'), 'NanoCpus');
  return facts;
}

/** `types.ExecConfig`. */
function execFacts(body: unknown): Facts {
  const top = topObject(body);
  const facts: Facts = Object.create(null);
  facts['exec.privileged'] = asBool(field(top, 'Privileged'), 'Privileged');
  facts['exec.user'] = asString(field(top, 'User'), 'User');
  facts['exec.cmd'] = asStrings(field(top, 'Cmd'), 'Cmd');
  return facts;
}

/**
 * `swarm.ServiceSpec` (the same body for create and update). The container facts come from
 * `TaskTemplate.ContainerSpec`; `create.labels` are the labels of the containers the service
 * runs (`ContainerSpec.Labels`), not the service's own.
 */
function serviceFacts(body: unknown): Facts {
  const top = topObject(body);
  const task = asObj(field(top, 'TaskTemplate'), 'TaskTemplate');
  // A plugin task installs a managed plugin on every node, with privileges of its own that
  // container facts cannot describe.
  if (field(task, 'PluginSpec') !== undefined || asString(field(task, 'Runtime'), 'TaskTemplate.Runtime') === 'plugin') {
    throw new ShapeError('TaskTemplate describes a plugin, whose privileges create.* facts cannot describe');
  }
  const spec = asObj(field(task, 'ContainerSpec'), 'TaskTemplate.ContainerSpec');
  const at = (name: string) => `TaskTemplate.ContainerSpec.${name}`;
  const facts: Facts = Object.create(null);
  facts['create.image'] = normaliseImage(asString(field(spec, 'Image'), at('Image')));
  facts['create.user'] = asString(field(spec, 'User'), at('User'));
  facts['create.labels'] = asStringMap(field(spec, 'Labels'), at('Labels'));

  const caps = new Collector();
  for (const c of asStrings(field(spec, 'CapabilityAdd'), at('CapabilityAdd'))) caps.add(normaliseCapability(c));
  facts['create.capAdd'] = caps.list();

  const mounts: MountFacts = { hostPaths: new Collector(), volumes: new Collector() };
  asList(field(spec, 'Mounts'), at('Mounts')).forEach((m, i) => readMount(m, `${at('Mounts')}[${i}]`, mounts));
  facts['create.hostPaths'] = mounts.hostPaths.list();
  facts['create.volumes'] = mounts.volumes.list();

  facts['create.sysctls'] = Object.keys(asStringMap(field(spec, 'Sysctls'), at('Sysctls')));

  // Privileges: SELinux disabled or relabelled; from API 1.44 also seccomp and AppArmor modes
  // (ignored by 20.10, counted anyway: a newer daemon honours them).
  const priv = asObj(field(spec, 'Privileges'), at('Privileges'));
  let unconfined = false;
  const selinux = asObj(field(priv, 'SELinuxContext'), `${at('Privileges')}.SELinuxContext`);
  if (selinux !== undefined) {
    if (asBool(field(selinux, 'Disable'), `${at('Privileges')}.SELinuxContext.Disable`)) unconfined = true;
    for (const f of ['User', 'Role', 'Type', 'Level']) {
      if (asString(field(selinux, f), `${at('Privileges')}.SELinuxContext.${f}`) !== '') unconfined = true;
    }
  }
  for (const f of ['Seccomp', 'AppArmor']) {
    const mode = asString(field(asObj(field(priv, f), `${at('Privileges')}.${f}`), 'Mode'), `${at('Privileges')}.${f}.Mode`);
    if (mode !== '' && mode !== 'default') unconfined = true;
  }
  facts['create.unconfined'] = unconfined;

  const namespaces: string[] = [];
  const networks = [
    ...asList(field(task, 'Networks'), 'TaskTemplate.Networks').map((n, i) => [n, `TaskTemplate.Networks[${i}]`] as const),
    ...asList(field(top, 'Networks'), 'Networks').map((n, i) => [n, `Networks[${i}]`] as const),
  ];
  for (const [n, path] of networks) {
    if (asString(field(asObj(n, path), 'Target'), `${path}.Target`) === 'host') {
      namespaces.push('network');
      break;
    }
  }
  facts['create.hostNamespaces'] = namespaces;

  const ports = new PortSet();
  const endpoint = asObj(field(top, 'EndpointSpec'), 'EndpointSpec');
  asList(field(endpoint, 'Ports'), 'EndpointSpec.Ports').forEach((p, i) => {
    const port = asInt(field(asObj(p, `EndpointSpec.Ports[${i}]`), 'PublishedPort'), `EndpointSpec.Ports[${i}].PublishedPort`);
    // 0: the swarm assigns one.
    ports.add(port);
  });
  facts['create.publishedPorts'] = ports.list();

  const limits = asObj(field(asObj(field(task, 'Resources'), 'TaskTemplate.Resources'), 'Limits'), 'TaskTemplate.Resources.Limits');
  facts['create.memory'] = asInt(field(limits, 'MemoryBytes'), 'TaskTemplate.Resources.Limits.MemoryBytes');
  facts['create.nanoCpus'] = asInt(field(limits, 'NanoCPUs'), 'TaskTemplate.Resources.Limits.NanoCPUs');
  return facts;
}

/** `volume.VolumeCreateBody`: `DriverOpts.device` is a host path (or device) the volume will mount. */
function volumeFacts(body: unknown): Facts {
  const top = topObject(body);
  const facts: Facts = Object.create(null);
  const hostPaths = new Collector();
  readDriverOptions(field(top, 'DriverOpts'), 'DriverOpts', hostPaths);
  facts['create.hostPaths'] = hostPaths.list();
  facts['create.labels'] = asStringMap(field(top, 'Labels'), 'Labels');
  return facts;
}
