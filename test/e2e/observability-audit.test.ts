/**
 * The audit sink at the product level (`dockward serve` from dist/, no daemon needed): with
 * `audit.file: "-"` and a stdout pipe that nobody reads - a log shipper that hung - the gateway
 * keeps answering, and once the pipe is read again every record arrives. A sink that wrote
 * synchronously would freeze after ~64 KiB; one that used an fs stream on this non-blocking fd
 * fails with EAGAIN and loses records (both seen while building it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI_MAIN } from './harness.js';

const REQUESTS = 2000;

let child: ChildProcess | undefined;
let dir: string | undefined;
afterAll(async () => {
  child?.kill('SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

function get(port: number, p: string, agent: http.Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.setTimeout(20_000, () => req.destroy(new Error(`no answer to GET ${p} within 20 s: the gateway is blocked`)));
    req.on('error', reject);
  });
}

describe('audit.file "-" with a stdout nobody reads', () => {
  it('does not block the gateway, and loses nothing once stdout is read again', async () => {
    expect(existsSync(CLI_MAIN), `${CLI_MAIN} (built by test/global-setup.ts)`).toBe(true);
    dir = await mkdtemp(path.join(os.tmpdir(), 'dw-audit-stdout-'));
    await writeFile(path.join(dir, 'secret'), randomBytes(48).toString('hex'), { mode: 0o600 });
    await writeFile(path.join(dir, 'policy.yaml'), 'rules: []\n');
    await writeFile(
      path.join(dir, 'dockward.yaml'),
      `listen: 127.0.0.1:0
upstream: unix://${dir}/no-daemon.sock
auth: { jwt: { algorithms: [HS256], secretFile: ${dir}/secret } }
policies: [${dir}/policy.yaml]
metrics: { listen: 127.0.0.1:0 }
audit: { file: "-" }
`,
    );
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DOCKWARD_') && k !== 'NODE_OPTIONS'));
    const proc = spawn(process.execPath, [CLI_MAIN, 'serve', '--config', path.join(dir, 'dockward.yaml')], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    // Nobody reads stdout: the pipe and Node's read buffer fill up and stay full.
    proc.stdout!.pause();
    let stderr = '';
    const ports = await new Promise<{ listen: number; metrics: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "listening" line within 20 s:\n${stderr}`)), 20_000);
      proc.stderr!.on('data', (c: Buffer) => {
        stderr += c.toString();
        const m = /"listen":"127\.0\.0\.1:(\d+)","metrics":"127\.0\.0\.1:(\d+)"/.exec(stderr);
        if (m) {
          clearTimeout(timer);
          resolve({ listen: Number(m[1]), metrics: Number(m[2]) });
        }
      });
      proc.on('exit', (code) => reject(new Error(`exited (${code}):\n${stderr}`)));
    });

    // Unauthenticated requests: each one is an audit record (~400 bytes), 2000 of them ~800 KiB.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    let next = 0;
    const statuses: number[] = [];
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < REQUESTS) {
          next++;
          statuses.push(await get(ports.listen, '/v1.41/containers/json', agent));
        }
      }),
    );
    agent.destroy();
    expect(statuses.length).toBe(REQUESTS);
    expect(new Set(statuses)).toEqual(new Set([401]));

    const metrics = await (await fetch(`http://127.0.0.1:${ports.metrics}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^dockward_requests_total\\{action="unclassified",decision="unauthenticated",code="401"\\} ${REQUESTS}$`, 'm'));
    // 800 KiB is far below the sink's 8 MiB backlog limit: nothing was dropped, only queued.
    expect(metrics).toMatch(/^dockward_audit_dropped_total\{reason="backlog"\} 0$/m);

    // The shipper comes back: every record arrives, each a JSON line without a token.
    let out = '';
    proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    proc.stdout!.resume();
    const until = Date.now() + 20_000;
    while (out.split('\n').length - 1 < REQUESTS && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    const lines = out.trimEnd().split('\n');
    expect(lines).toHaveLength(REQUESTS);
    for (const l of lines) expect(JSON.parse(l)).toMatchObject({ event: 'request', decision: 'unauthenticated', status: 401 });

    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
  });
});
