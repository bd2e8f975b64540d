/**
 * The private test dockerd (scripts/dockerd-test.sh) and the containers the bench needs, all
 * driven through the Engine API on the daemon's socket directly (never through the gateway, so
 * that setup does not disturb what is measured).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { callJson, once, type Endpoint } from './client.js';

export const IMAGE = 'busybox:local';
export const LABEL_KEY = 'dockward.bench';

function run(file: string, args: string[], cwd: string, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

export interface Daemon {
  readonly sock: string;
  /** dockerd and containerd pids, for CPU accounting; may be empty when they cannot be found. */
  readonly pids: number[];
  release(): Promise<void>;
}

/**
 * Starts (or reuses) the private dockerd with a lease held by this process: the daemon stays up
 * while any lease holder lives, and the last release stops a daemon that a leased start launched.
 */
export async function leaseDaemon(repoRoot: string): Promise<Daemon> {
  const script = path.join(repoRoot, 'scripts', 'dockerd-test.sh');
  const lease = String(process.pid);
  const r = await run('bash', [script, 'start', '--lease', lease], repoRoot, 360_000);
  if (r.code !== 0) throw new Error(`scripts/dockerd-test.sh start failed (exit ${r.code}):\n${r.stderr.trim().split('\n').slice(-20).join('\n')}`);
  const m = /^DOCKWARD_TEST_DOCKER_SOCK=(.+)$/m.exec(r.stdout);
  if (!m) throw new Error(`scripts/dockerd-test.sh start printed no DOCKWARD_TEST_DOCKER_SOCK:\n${r.stdout}`);
  const sock = m[1]!.trim();
  const dir = path.dirname(sock);
  const pids: number[] = [];
  for (const f of [path.join(dir, 'docker.pid'), path.join(dir, 'containerd', 'containerd.pid')]) {
    try {
      const pid = Number(readFileSync(f, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0) pids.push(pid);
    } catch {
      /* CPU accounting of the daemon is informative only */
    }
  }
  let released = false;
  return {
    sock,
    pids,
    async release() {
      if (released) return;
      released = true;
      const rr = await run('bash', [script, 'release', lease], repoRoot, 180_000);
      if (rr.code !== 0) process.stderr.write(`bench: releasing the dockerd lease failed: ${rr.stderr}\n`);
    },
  };
}

export interface ContainerSpec {
  cmd: string[];
  labels?: Record<string, string>;
}

export class Containers {
  readonly label: string;

  constructor(private readonly ep: Endpoint, runId: string) {
    this.label = `${LABEL_KEY}=${runId}`;
  }

  private labels(extra?: Record<string, string>): Record<string, string> {
    const [k, v] = this.label.split('=') as [string, string];
    return { [k]: v, ...extra };
  }

  /** The create body the lifecycle phase and setup use: no network, labelled for clean-up. */
  createBody(spec: ContainerSpec): Record<string, unknown> {
    return { Image: IMAGE, Cmd: spec.cmd, Labels: this.labels(spec.labels), HostConfig: { NetworkMode: 'none' } };
  }

  async create(spec: ContainerSpec): Promise<string> {
    const r = await callJson<{ Id: string }>(this.ep, 'POST', '/containers/create', this.createBody(spec));
    return r.Id;
  }

  async start(id: string): Promise<void> {
    await callJson(this.ep, 'POST', `/containers/${id}/start`);
  }

  async wait(id: string, timeoutMs: number): Promise<number> {
    const r = await callJson<{ StatusCode: number }>(this.ep, 'POST', `/containers/${id}/wait`, undefined, timeoutMs);
    return r.StatusCode;
  }

  async remove(id: string): Promise<void> {
    const r = await once(this.ep, 'DELETE', `/containers/${id}?force=1&v=1`, { timeoutMs: 60_000 });
    if (r.status !== 204 && r.status !== 404) throw new Error(`removing container ${id}: HTTP ${r.status}`);
  }

  /** Runs a command to completion (e.g. filling a file system) and insists on exit 0. */
  async runToExit(spec: ContainerSpec, timeoutMs: number): Promise<string> {
    const id = await this.create(spec);
    await this.start(id);
    const code = await this.wait(id, timeoutMs);
    if (code !== 0) throw new Error(`container ${spec.cmd.join(' ')} exited ${code}`);
    return id;
  }

  /** Ids of every container this run labelled. */
  async list(): Promise<string[]> {
    const filters = encodeURIComponent(JSON.stringify({ label: [this.label] }));
    const r = await callJson<{ Id: string }[]>(this.ep, 'GET', `/containers/json?all=1&filters=${filters}`);
    return r.map((c) => c.Id);
  }

  /** Removes every container of this run; bounded, and never throws (clean-up must go on). */
  async removeAll(): Promise<number> {
    let ids: string[];
    try {
      ids = await this.list();
    } catch (e) {
      process.stderr.write(`bench: listing containers for clean-up failed: ${(e as Error).message}\n`);
      return 0;
    }
    let removed = 0;
    // A few at a time: dockerd serialises much of the work anyway.
    for (let i = 0; i < ids.length; i += 8) {
      const batch = ids.slice(i, i + 8);
      const results = await Promise.allSettled(batch.map((id) => this.remove(id)));
      removed += results.filter((x) => x.status === 'fulfilled').length;
    }
    return removed;
  }
}

/** A ustar header for one regular file. */
export function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512, 0);
  const put = (text: string, off: number, len: number) => h.write(text, off, len, 'latin1');
  const octal = (n: number, len: number) => n.toString(8).padStart(len - 1, '0') + '\0';
  put(name, 0, 100);
  put(octal(0o644, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(size, 12), 124, 12);
  put(octal(Math.floor(Date.now() / 1000), 12), 136, 12);
  put('        ', 148, 8);
  put('0', 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  return h;
}

/** A tar archive holding one file of `size` bytes, as the pieces to write in order. */
export function tarPieces(name: string, size: number): { header: Buffer; size: number; trailer: Buffer; total: number } {
  const pad = (512 - (size % 512)) % 512;
  const trailer = Buffer.alloc(pad + 1024, 0);
  return { header: tarHeader(name, size), size, trailer, total: 512 + size + trailer.length };
}

/** The same archive in one buffer (the upload phase sends it from memory, as `docker cp` sends a file). */
export function tarBuffer(name: string, size: number, fill: Buffer): Buffer {
  const t = tarPieces(name, size);
  const out = Buffer.allocUnsafe(t.total);
  t.header.copy(out, 0);
  for (let off = 0; off < size; off += fill.length) fill.copy(out, 512 + off, 0, Math.min(fill.length, size - off));
  t.trailer.copy(out, 512 + size);
  return out;
}
