/**
 * Load generators: a closed loop of keep-alive connections (each sends its next request when
 * the previous answer is complete, as the docker CLI and most API clients do), single large
 * transfers, the container lifecycle and many idle streams. Every loop is bounded in time and
 * in count, and every request has a timeout.
 */
import http from 'node:http';
import net from 'node:net';
import { buildRequest, connectSocket, Conn, type Endpoint } from './client.js';
import { CpuWindow, type CpuUsed } from './proc.js';

export interface LoopResult {
  /** Completed requests inside the measured window. */
  readonly count: number;
  /** Non-2xx answers and failed requests. */
  readonly errors: number;
  readonly firstError?: string;
  readonly seconds: number;
  /** Per-request latencies in milliseconds (when asked for). */
  readonly latenciesMs: number[];
  readonly cpu: CpuUsed;
}

export interface LoopOptions {
  /** Connections (workers), each with one request in flight. */
  readonly concurrency: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly recordLatency: boolean;
  /** Hard cap on requests, whatever the duration (a runaway fast target must not loop forever). */
  readonly maxRequests: number;
  readonly daemonPids: readonly number[];
}

const MAX_ERRORS = 200;

/**
 * The load generator's client. `raw` (default): client.ts, a prebuilt request on a keep-alive
 * socket, ~20 µs of CPU per request here. `http`: node:http with a keep-alive Agent, as a
 * typical Node API client does it, several times the CPU per request: it shows how much a
 * heavier client flatters the ratios (it caps the direct socket's rate, not the gateway's).
 */
export type ClientKind = 'raw' | 'http';

interface Channel {
  /** Resolves with the status code once the whole response has arrived. */
  send(): Promise<number>;
  readonly usable: boolean;
  close(): void;
}

interface Channels {
  open(): Promise<Channel>;
  close(): void;
}

function rawChannels(ep: Endpoint, request: Buffer, timeoutMs: number): Channels {
  return {
    async open() {
      const c = await Conn.open(ep.address);
      return {
        send: () => c.send(request, { timeoutMs }).then((r) => r.status),
        get usable() {
          return c.usable;
        },
        close: () => c.close(),
      };
    },
    close() {},
  };
}

function httpChannels(ep: Endpoint, method: string, path: string, concurrency: number, timeoutMs: number): Channels {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
  const headers: Record<string, string> = {};
  for (const line of ep.headerLines.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  const target = ep.address.kind === 'unix' ? { socketPath: ep.address.path } : { host: ep.address.host, port: ep.address.port };
  const send = () =>
    new Promise<number>((resolve, reject) => {
      const req = http.request({ ...target, agent, method, path, headers }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no response within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end();
    });
  return {
    open: () => Promise.resolve({ send, usable: true, close() {} }),
    close: () => agent.destroy(),
  };
}

/** The channels of a load phase: one GET (or HEAD) request sent over and over. */
export function channels(kind: ClientKind, ep: Endpoint, method: string, path: string, concurrency: number, timeoutMs = 30_000): Channels {
  return kind === 'raw' ? rawChannels(ep, buildRequest(ep, method, path), timeoutMs) : httpChannels(ep, method, path, concurrency, timeoutMs);
}

/**
 * One request on `c`: its latency in ms, or undefined after `fail` was told why. A non-2xx
 * answer is a failure: a fast 401 or 403 must not count as a served request.
 */
async function timedSend(c: Channel, fail: (why: string) => void): Promise<number | undefined> {
  const t0 = performance.now();
  try {
    const status = await c.send();
    if (status < 200 || status > 299) {
      fail(`HTTP ${status}`);
      return undefined;
    }
  } catch (e) {
    fail((e as Error).message);
    return undefined;
  }
  return performance.now() - t0;
}

export async function closedLoop(ch: Channels, pid: number | undefined, o: LoopOptions): Promise<LoopResult> {
  const conns = await Promise.all(Array.from({ length: o.concurrency }, () => ch.open()));
  const lat: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let count = 0;
  let measuring = false;
  let stop = false;
  let issued = 0;
  const fail = (why: string) => {
    errors++;
    firstError ??= why;
  };

  const worker = async (i: number) => {
    while (!stop && errors < MAX_ERRORS && issued < o.maxRequests) {
      let c = conns[i]!;
      if (!c.usable) {
        c.close();
        try {
          c = await ch.open();
        } catch (e) {
          errors++;
          firstError ??= (e as Error).message;
          continue;
        }
        conns[i] = c;
      }
      const counted = measuring;
      if (counted) issued++;
      const ms = await timedSend(c, fail);
      if (ms === undefined) continue;
      if (counted && measuring) {
        count++;
        if (o.recordLatency) lat.push(ms);
      }
    }
  };

  const workers = conns.map((_, i) => worker(i));
  await sleep(o.warmupMs);
  // Warm-up failures are not the measurement's, unless the target never worked at all.
  const warm = { errors, firstError };
  errors = 0;
  firstError = undefined;
  const cpu = new CpuWindow(pid, o.daemonPids);
  const t0 = performance.now();
  measuring = true;
  await sleep(o.durationMs);
  measuring = false;
  const seconds = (performance.now() - t0) / 1000;
  const used = cpu.end();
  stop = true;
  await Promise.all(workers);
  for (const c of conns) c.close();
  ch.close();
  if (count === 0 && warm.errors > 0) return { count, errors: warm.errors, firstError: warm.firstError, seconds, latenciesMs: lat, cpu: used };
  return { count, errors, firstError, seconds, latenciesMs: lat, cpu: used };
}

/** Sequential requests on one keep-alive connection, `count` of them (latency at concurrency 1). */
export async function sequential(ch: Channels, pid: number | undefined, o: { count: number; warmup: number; maxMs: number; daemonPids: readonly number[] }): Promise<LoopResult> {
  let c = await ch.open();
  const lat: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const deadline = performance.now() + o.maxMs;
  const fail = (why: string) => {
    errors++;
    firstError ??= why;
  };
  const one = async (): Promise<number | undefined> => {
    if (!c.usable) {
      c.close();
      c = await ch.open();
    }
    return timedSend(c, fail);
  };
  for (let i = 0; i < o.warmup && errors < MAX_ERRORS; i++) await one();
  errors = 0;
  firstError = undefined;
  const cpu = new CpuWindow(pid, o.daemonPids);
  const t0 = performance.now();
  for (let i = 0; i < o.count && errors < MAX_ERRORS && performance.now() < deadline; i++) {
    const ms = await one();
    if (ms !== undefined) lat.push(ms);
  }
  const seconds = (performance.now() - t0) / 1000;
  const used = cpu.end();
  c.close();
  ch.close();
  return { count: lat.length, errors, firstError, seconds, latenciesMs: lat, cpu: used };
}

export interface TransferResult {
  readonly bytes: number;
  readonly seconds: number;
  readonly status: number;
  readonly cpu: CpuUsed;
}

/** One GET whose body is counted and dropped as fast as the client can read it. */
export async function download(ep: Endpoint, path: string, o: { timeoutMs: number; daemonPids: readonly number[] }): Promise<TransferResult> {
  const c = await Conn.open(ep.address);
  try {
    const req = buildRequest(ep, 'GET', path);
    const cpu = new CpuWindow(ep.pid, o.daemonPids);
    const t0 = performance.now();
    const r = await c.send(req, { timeoutMs: o.timeoutMs });
    const seconds = (performance.now() - t0) / 1000;
    return { bytes: r.bytes, seconds, status: r.status, cpu: cpu.end() };
  } finally {
    c.close();
  }
}

/** One PUT of a body held in memory (as `docker cp` sends a file it has read). */
export async function uploadBuffer(ep: Endpoint, path: string, body: Buffer, o: { timeoutMs: number; daemonPids: readonly number[] }): Promise<TransferResult> {
  const c = await Conn.open(ep.address);
  try {
    const head = buildRequest(ep, 'PUT', path, { contentType: 'application/x-tar', contentLength: body.length });
    const cpu = new CpuWindow(ep.pid, o.daemonPids);
    const t0 = performance.now();
    const r = await c.send([head, body], { timeoutMs: o.timeoutMs });
    const seconds = (performance.now() - t0) / 1000;
    return { bytes: body.length, seconds, status: r.status, cpu: cpu.end() };
  } finally {
    c.close();
  }
}

/**
 * One PUT of a body generated on the fly from a small reused buffer, honouring backpressure:
 * gigabytes without holding them in the bench's memory.
 */
export async function uploadStream(
  ep: Endpoint,
  path: string,
  pieces: { header: Buffer; size: number; trailer: Buffer; total: number },
  fill: Buffer,
  o: { timeoutMs: number; daemonPids: readonly number[] },
): Promise<TransferResult> {
  const c = await Conn.open(ep.address);
  try {
    const head = buildRequest(ep, 'PUT', path, { contentType: 'application/x-tar', contentLength: pieces.total });
    const cpu = new CpuWindow(ep.pid, o.daemonPids);
    const t0 = performance.now();
    const response = c.send([head, pieces.header], { timeoutMs: o.timeoutMs });
    // An early answer (an error) ends the upload; its rejection is handled by the await below.
    let answered = false;
    response.then(() => (answered = true), () => (answered = true));
    for (let off = 0; off < pieces.size && !answered; off += fill.length) {
      const n = Math.min(fill.length, pieces.size - off);
      await c.write(n === fill.length ? fill : fill.subarray(0, n));
    }
    if (!answered) await c.write(pieces.trailer);
    const r = await response;
    const seconds = (performance.now() - t0) / 1000;
    return { bytes: pieces.total, seconds, status: r.status, cpu: cpu.end() };
  } finally {
    c.close();
  }
}

/** create -> start -> wait -> remove on one keep-alive connection; milliseconds per cycle. */
export async function lifecycle(ep: Endpoint, createBody: unknown, o: { cycles: number; maxMs: number }): Promise<number[]> {
  let c = await Conn.open(ep.address);
  const out: number[] = [];
  const body = Buffer.from(JSON.stringify(createBody));
  const deadline = performance.now() + o.maxMs;
  const call = async (method: string, path: string, b?: Buffer): Promise<Buffer> => {
    if (!c.usable) {
      c.close();
      c = await Conn.open(ep.address);
    }
    const r = await c.send(buildRequest(ep, method, path, { body: b }), { collect: true, timeoutMs: 60_000 });
    if (r.status < 200 || r.status > 299) throw new Error(`${method} ${path} via ${ep.name}: HTTP ${r.status}: ${r.body?.toString('utf8').slice(0, 300)}`);
    return r.body ?? Buffer.alloc(0);
  };
  try {
    for (let i = 0; i < o.cycles && performance.now() < deadline; i++) {
      const t0 = performance.now();
      const { Id: id } = JSON.parse((await call('POST', '/containers/create', body)).toString('utf8')) as { Id: string };
      await call('POST', `/containers/${id}/start`);
      const { StatusCode } = JSON.parse((await call('POST', `/containers/${id}/wait`)).toString('utf8')) as { StatusCode: number };
      await call('DELETE', `/containers/${id}`);
      out.push(performance.now() - t0);
      if (StatusCode !== 0) throw new Error(`lifecycle container exited ${StatusCode}`);
    }
  } finally {
    c.close();
  }
  return out;
}

export interface Streams {
  /** Streams whose 200 head arrived. */
  readonly open: number;
  readonly failed: number;
  readonly firstError?: string;
  close(): void;
}

/**
 * Opens `n` `GET .../logs?follow=1` streams and waits until each has its response head (or
 * failed). They then stay open and idle until close().
 */
export async function openLogStreams(ep: Endpoint, containerId: string, n: number, timeoutMs: number): Promise<Streams> {
  const req = buildRequest(ep, 'GET', `/containers/${containerId}/logs?follow=1&stdout=1&stderr=1`);
  const sockets: net.Socket[] = [];
  let open = 0;
  let failed = 0;
  let firstError: string | undefined;
  const one = () =>
    new Promise<void>((resolve) => {
      const s = connectSocket(ep.address);
      sockets.push(s);
      let head = '';
      let done = false;
      const settle = (ok: boolean, why?: string) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (ok) open++;
        else {
          failed++;
          firstError ??= why;
          s.destroy();
        }
        resolve();
      };
      const timer = setTimeout(() => settle(false, `no response head within ${timeoutMs} ms`), timeoutMs);
      s.on('error', (e) => settle(false, e.message));
      s.on('close', () => settle(false, 'closed before the response head'));
      s.once('connect', () => s.write(req));
      s.on('data', (b: Buffer) => {
        if (done) return;
        head += b.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const status = /^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1];
        if (status === '200') settle(true);
        else settle(false, `HTTP ${status}: ${head.slice(end + 4, end + 200)}`);
      });
    });
  // In batches: 500 simultaneous connects would overflow a listen backlog and measure that instead.
  for (let i = 0; i < n; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, n - i) }, one));
  }
  return {
    open,
    failed,
    firstError,
    close() {
      for (const s of sockets) s.destroy();
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
