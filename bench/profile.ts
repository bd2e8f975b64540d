/**
 * A small reader of V8 .cpuprofile files (`node --cpu-prof`): self time per function and per
 * module, optionally only for the samples inside a time window (the load phase, not start-up).
 *
 * Format: nodes[] (id, callFrame {functionName, url, lineNumber, columnNumber}, children ids),
 * startTime/endTime (µs, V8's monotonic clock, which on Linux is CLOCK_MONOTONIC like
 * process.hrtime), samples[] (node id per sample) and timeDeltas[] (µs since the previous
 * sample). As in Chrome's DevTools, a sample owns the time until the next sample.
 */
import path from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  readonly name: string;
  readonly where: string;
  readonly ms: number;
  /** Share of the non-idle time in the window. */
  readonly share: number;
  /**
   * The nearest project or package frame (dist/..., node_modules/...) above the samples, the
   * one that contributed most of this function's self time, with its share: which of our code
   * paths a native call such as `writeUtf8String` (a socket write) belongs to.
   */
  readonly via?: string;
}

export interface ProfileSummary {
  /** Milliseconds covered by the samples in the window. */
  readonly windowMs: number;
  /** Milliseconds of the window the process was busy (not `(idle)`). */
  readonly busyMs: number;
  readonly samples: number;
  /** True when the window did not overlap the profile and the whole profile was used. */
  readonly wholeProfile: boolean;
  readonly functions: SelfTime[];
  readonly modules: SelfTime[];
}

/** `file:///work/main/dist/src/x.js` -> `dist/src/x.js`; node_modules paths from the package on. */
export function shortUrl(url: string, root: string): string {
  let u = url.startsWith('file://') ? url.slice('file://'.length) : url;
  const nm = u.lastIndexOf('/node_modules/');
  if (nm >= 0) return u.slice(nm + 1);
  if (u.startsWith(root + path.sep)) u = u.slice(root.length + 1);
  return u;
}

/** The module a frame belongs to: a package, a node: built-in, or a project file. */
export function moduleOf(url: string, root: string): string {
  if (url === '') return '(native / V8)';
  const s = shortUrl(url, root);
  if (s.startsWith('node_modules/')) {
    const parts = s.split('/');
    return parts[1]?.startsWith('@') ? `${parts[1]}/${parts[2]}` : (parts[1] ?? s);
  }
  if (s.startsWith('node:')) {
    // node:internal/http/... -> node:internal/http ; node:_http_server stays.
    const parts = s.split('/');
    return parts.length > 2 ? parts.slice(0, 2).join('/') : s;
  }
  return s;
}

export function summarise(p: CpuProfile, o: { root: string; fromUs?: number; toUs?: number; top: number }): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  // Project files and packages are file:// URLs; Node's own modules are node:...
  const isApp = (url: string) => url.startsWith('file://');
  const viaCache = new Map<number, string>();
  // The nearest app frame at or above a node (not counting the node itself when it is one).
  const viaOf = (id: number): string => {
    const cached = viaCache.get(id);
    if (cached !== undefined) return cached;
    let cur = parent.get(id);
    let out = '(node internals only)';
    while (cur !== undefined) {
      const cf = byId.get(cur)?.callFrame;
      if (cf && cf.url && isApp(cf.url)) {
        out = `${cf.functionName || '(anonymous)'} ${shortUrl(cf.url, o.root)}:${cf.lineNumber + 1}`;
        break;
      }
      cur = parent.get(cur);
    }
    viaCache.set(id, out);
    return out;
  };
  // Timestamps of each sample.
  const ts: number[] = new Array(p.samples.length);
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    ts[i] = t;
  }
  let from = o.fromUs ?? -Infinity;
  let to = o.toUs ?? Infinity;
  let wholeProfile = false;
  const inWindow = ts.filter((x) => x >= from && x < to).length;
  if (inWindow === 0) {
    wholeProfile = true;
    from = -Infinity;
    to = Infinity;
  }
  const fnTime = new Map<string, { name: string; where: string; us: number; via: Map<string, number> }>();
  const modTime = new Map<string, number>();
  let windowUs = 0;
  let idleUs = 0;
  let samples = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const at = ts[i]!;
    if (at < from || at >= to) continue;
    const next = i + 1 < ts.length ? ts[i + 1]! : p.endTime;
    const us = Math.max(0, next - at);
    const node = byId.get(p.samples[i]!);
    if (!node) continue;
    samples++;
    windowUs += us;
    const cf = node.callFrame;
    if (cf.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const where = cf.url ? `${shortUrl(cf.url, o.root)}:${cf.lineNumber + 1}` : '';
    const key = `${cf.functionName}\u0000${where}`;
    let e = fnTime.get(key);
    if (!e) {
      e = { name: cf.functionName || '(anonymous)', where, us: 0, via: new Map() };
      fnTime.set(key, e);
    }
    e.us += us;
    const v = viaOf(node.id);
    e.via.set(v, (e.via.get(v) ?? 0) + us);
    const mod = cf.url ? moduleOf(cf.url, o.root) : cf.functionName.startsWith('(') ? cf.functionName : '(native / V8)';
    modTime.set(mod, (modTime.get(mod) ?? 0) + us);
  }
  const busyUs = windowUs - idleUs;
  const rank = <T extends { us: number }>(xs: T[]) => xs.sort((a, b) => b.us - a.us);
  return {
    windowMs: windowUs / 1000,
    busyMs: busyUs / 1000,
    samples,
    wholeProfile,
    functions: rank([...fnTime.values()])
      .slice(0, o.top)
      .map((f) => {
        const [top, topUs] = [...f.via].sort((a, b) => b[1] - a[1])[0] ?? ['', 0];
        const via = top ? `${top} (${Math.round((topUs / Math.max(1, f.us)) * 100)}%)` : undefined;
        return { name: f.name, where: f.where, ms: f.us / 1000, share: busyUs > 0 ? f.us / busyUs : 0, via };
      }),
    modules: rank([...modTime].map(([name, us]) => ({ name, where: '', us })))
      .slice(0, o.top)
      .map((m) => ({ name: m.name, where: '', ms: m.us / 1000, share: busyUs > 0 ? m.us / busyUs : 0 })),
  };
}

export function formatSummary(s: ProfileSummary, requests?: number): string {
  const out: string[] = [];
  const perReq = (ms: number) => (requests && requests > 0 ? ((ms * 1000) / requests).toFixed(1) : '');
  out.push(
    `profile: ${s.samples} samples over ${s.windowMs.toFixed(0)} ms, busy ${s.busyMs.toFixed(0)} ms (${((s.busyMs / Math.max(1, s.windowMs)) * 100).toFixed(0)}% of one core)` +
      (s.wholeProfile ? ' [the window matched no samples: whole profile]' : '') +
      (requests ? `, ${requests} requests` : ''),
  );
  out.push('');
  out.push(`| # | self ms | self % | µs/req | function | where | mostly under (nearest project/package frame) |`);
  out.push(`|---:|---:|---:|---:|---|---|---|`);
  s.functions.forEach((f, i) => out.push(`| ${i + 1} | ${f.ms.toFixed(1)} | ${(f.share * 100).toFixed(1)} | ${perReq(f.ms)} | \`${f.name}\` | ${f.where} | ${f.via ?? ''} |`));
  out.push('');
  out.push(`| module | self ms | self % | µs/req |`);
  out.push(`|---|---:|---:|---:|`);
  for (const m of s.modules) out.push(`| ${m.name} | ${m.ms.toFixed(1)} | ${(m.share * 100).toFixed(1)} | ${perReq(m.ms)} |`);
  return out.join('\n');
}
