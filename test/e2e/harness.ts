/**
 * End-to-end harness: the real gateway (`node dist/src/cli/main.js serve`), the real docker CLI and
 * the private test dockerd started by test/global-setup.ts (scripts/dockerd-test.sh).
 *
 *   describeE2E('docker run through the gateway', () => {
 *     it('runs', async () => {
 *       const gw = await startGateway({ policyYaml });
 *       const r = await gw.dockerAs({ sub: 'alice', groups: ['dev'] },
 *         ['run', '--rm', '--network', 'none', ...labelArgs(), TEST_IMAGE, 'echo', 'hi']);
 *       expect(r).toMatchObject({ code: 0, stdout: 'hi\n' });
 *     });
 *   });
 *
 * Only loopback and the test socket are ever contacted: the gateway listens on 127.0.0.1:0 and
 * the CLI's proxy variables are removed. Containers must be created with `--network none` and
 * `labelArgs()`, so that the suite's cleanup finds them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import jwt from 'jsonwebtoken';
import { afterAll, beforeEach, describe, inject } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { NODE_FLAGS } from '../../src/cli/node-flags.js';
// For the ProvidedContext declaration (dockerSock, dockerUnavailableReason); erased at run time.
import type {} from '../global-setup.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI_MAIN = path.join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
/** Imported by scripts/dockerd-test.sh from a static busybox: every busybox applet is in /bin. */
export const TEST_IMAGE = 'busybox:local';
/** The docker CLI to drive; DOCKWARD_TEST_DOCKER_CLI selects another one (e.g. an older version). */
export const DOCKER_CLI = process.env.DOCKWARD_TEST_DOCKER_CLI || 'docker';

/** One id per test file (vitest runs each file in its own worker process). */
export const RUN_ID = randomBytes(4).toString('hex');
export const TEST_LABEL_KEY = 'dockward.test';
export const TEST_LABEL = `${TEST_LABEL_KEY}=${RUN_ID}`;

/** `docker run`/`create` arguments that let removeTestContainers() find the container. */
export function labelArgs(): string[] {
  return ['--label', TEST_LABEL];
}

let nameCounter = 0;
/** A container/volume name no other test file or run uses. */
export function uniqueName(prefix = 'dw'): string {
  nameCounter += 1;
  return `${prefix}-${RUN_ID}-${nameCounter}`;
}

// ---------------------------------------------------------------------------------------------
// Is there a daemon?

export type E2EStatus = { available: true; sock: string } | { available: false; reason: string };

export function e2eStatus(): E2EStatus {
  let sock: string | null | undefined;
  let reason: string | null | undefined;
  try {
    sock = inject('dockerSock');
    reason = inject('dockerUnavailableReason');
  } catch {
    sock = undefined;
  }
  sock ??= process.env.DOCKWARD_TEST_DOCKER_SOCK || null;
  if (sock) return { available: true, sock };
  return { available: false, reason: reason ?? 'test/global-setup.ts did not provide a docker socket' };
}

export function e2eAvailable(): boolean {
  return e2eStatus().available;
}

/** The private daemon's socket path; throws (with the reason) when there is none. */
export function dockerSock(): string {
  const s = e2eStatus();
  if (!s.available) throw new Error(`no test dockerd: ${s.reason}`);
  return s.sock;
}

let skipNoticeShown = false;

/**
 * A describe() that needs the test daemon: skipped, with the reason in its name, when there is
 * none (global setup turns that into a failure under DOCKWARD_E2E_REQUIRED=1). Stops the
 * gateways its tests started, removes their containers, and prints a failing test's gateway logs.
 */
export function describeE2E(name: string, fn: () => void): void {
  const status = e2eStatus();
  if (!status.available) {
    if (!skipNoticeShown) {
      skipNoticeShown = true;
      console.warn(`[dockward e2e] skipped: ${status.reason}`);
    }
    describe.skip(`${name} [skipped: ${status.reason.split('\n')[0]}]`, () => {
      // Collection still runs the body; one that needs the daemon at collection time must not
      // turn a skip into a failure.
      try {
        fn();
      } catch {
        /* skipped anyway */
      }
    });
    return;
  }
  describe(name, () => {
    beforeEach((ctx) => {
      const startedBefore = new Set(allGateways);
      ctx.onTestFailed(() => {
        for (const gw of allGateways) {
          if (!startedBefore.has(gw) || gw.running()) printGatewayLogs(gw);
        }
      });
    });
    afterAll(async () => {
      await stopAllGateways();
      await removeTestContainers();
      await removeGatewayDirs();
    });
    fn();
  });
}

// ---------------------------------------------------------------------------------------------
// The docker CLI

export interface DockerResult {
  /** Exit code; null when the CLI was killed (timeout) or died from a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stdoutBytes: Buffer;
  stderr: string;
  timedOut: boolean;
  /** The command line, for assertion messages. */
  command: string;
}

export interface DockerOptions {
  /** `tcp://127.0.0.1:PORT` (a gateway) or `unix:///path` (the daemon). */
  host: string;
  /** DOCKER_CONFIG directory; default: an empty one, never the caller's ~/.docker. */
  configDir?: string;
  /** Written to the CLI's stdin, then stdin is closed (EOF, a half-close for `run -i`). */
  input?: string | Buffer;
  /** Default 30 s; the CLI is killed (SIGKILL) when it runs longer and `timedOut` is set. */
  timeoutMs?: number;
  env?: Record<string, string>;
}

const DOCKER_ENV_DROPPED = [
  'DOCKER_HOST', 'DOCKER_CONTEXT', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH', 'DOCKER_API_VERSION', 'DOCKER_CONFIG',
  // Tests talk to loopback only; a proxy must never see (or forward) their traffic.
  'HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'all_proxy',
];

let emptyConfigDir: Promise<string> | undefined;
function defaultConfigDir(): Promise<string> {
  emptyConfigDir ??= writeDockerConfigDir({});
  return emptyConfigDir;
}

/** The environment and arguments of one docker CLI run: never the caller's ~/.docker or DOCKER_* settings. */
async function dockerInvocation(args: string[], opts: DockerOptions): Promise<{ env: NodeJS.ProcessEnv; fullArgs: string[]; command: string }> {
  const configDir = opts.configDir ?? (await defaultConfigDir());
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of DOCKER_ENV_DROPPED) delete env[k];
  Object.assign(env, { DOCKER_CONFIG: configDir, DOCKER_CLI_HINTS: 'false', NO_PROXY: '*' }, opts.env);
  const fullArgs = ['-H', opts.host, ...args];
  return { env, fullArgs, command: [DOCKER_CLI, ...fullArgs].join(' ') };
}

/** Runs the real docker CLI: `docker -H <host> ...args`, bounded by a timeout. Never throws on exit codes. */
export async function docker(args: string[], opts: DockerOptions): Promise<DockerResult> {
  const { env, fullArgs, command } = await dockerInvocation(args, opts);
  const timeoutMs = opts.timeoutMs ?? 30_000;

  return new Promise((resolve) => {
    const child = spawn(DOCKER_CLI, fullArgs, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let spawnError: Error | undefined;
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    // The CLI may exit without reading stdin (EPIPE): that is its answer, not a harness error.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      spawnError = e;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      let stderr = Buffer.concat(err).toString('utf8');
      if (spawnError) stderr += `\n[harness] could not run ${DOCKER_CLI}: ${spawnError.message}`;
      if (timedOut) stderr += `\n[harness] killed after ${timeoutMs} ms: ${command}`;
      resolve({ code, signal, stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr, timedOut, command });
    });
  });
}

/** The docker CLI straight at the private daemon, for setup, cleanup and checking what really happened. */
export function dockerDirect(args: string[], opts: Omit<DockerOptions, 'host'> = {}): Promise<DockerResult> {
  return docker(args, { ...opts, host: `unix://${dockerSock()}` });
}

/** Removes (with their anonymous volumes) the containers labelled with `runId` (default: this file's). */
export async function removeTestContainers(runId: string = RUN_ID): Promise<void> {
  if (!e2eAvailable()) return;
  const ps = await dockerDirect(['ps', '--all', '--quiet', '--filter', `label=${TEST_LABEL_KEY}=${runId}`]);
  if (ps.code !== 0) throw new Error(`listing test containers failed: ${ps.stderr}`);
  const ids = ps.stdout.split('\n').filter(Boolean);
  if (ids.length === 0) return;
  const rm = await dockerDirect(['rm', '--force', '--volumes', ...ids], { timeoutMs: 60_000 });
  if (rm.code !== 0) throw new Error(`removing test containers failed: ${rm.stderr}`);
}

// ---------------------------------------------------------------------------------------------
// Tokens and DOCKER_CONFIG directories

export interface TokenOptions {
  secret: string;
  sub: string;
  groups: string[];
  /** Seconds (negative: already expired) or a jsonwebtoken span such as '1h'. Default 1 hour. */
  ttl?: number | string;
  /** More claims (iss, aud, ...); they override sub and groups. */
  claims?: Record<string, unknown>;
}

/** An HS256 JWT signed with `secret` taken as text (the secret file's content). */
export function mintToken(o: TokenOptions): string {
  const ttl = o.ttl ?? 3600;
  return jwt.sign({ sub: o.sub, groups: o.groups, ...o.claims }, o.secret, {
    algorithm: 'HS256',
    expiresIn: ttl as NonNullable<jwt.SignOptions['expiresIn']>,
  });
}

const tempDirs = new Set<string>();

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** A DOCKER_CONFIG directory whose config.json is `config` (e.g. `{ HttpHeaders: {...} }`). */
export async function writeDockerConfigDir(config: object, parent?: string): Promise<string> {
  const dir = parent ? await mkdtemp(path.join(parent, 'docker-config-')) : await tempDir('dockward-docker-config-');
  await writeFile(path.join(dir, 'config.json'), JSON.stringify(config), { mode: 0o600 });
  return dir;
}

// ---------------------------------------------------------------------------------------------
// The gateway

export interface GatewayOptions {
  /** Content of the one policy file. */
  policyYaml: string;
  /**
   * Merged over the generated config (objects deeply, arrays and scalars replaced, `undefined`
   * removes a key): listen/metrics on 127.0.0.1:0, upstream = the test daemon, HS256 auth.
   */
  config?: Record<string, unknown>;
  /** Upstream socket path; default the test daemon, or a socket that does not exist without one. */
  upstream?: string;
  /** Extra environment for the gateway (DOCKWARD_* of the test process are never passed on). */
  env?: Record<string, string>;
  /** Default 20 s. */
  readyTimeoutMs?: number;
  /** The entry point to run with `serve --config`; default dist/src/cli/main.js. */
  main?: string;
}

export interface Identity {
  sub: string;
  groups: string[];
  ttl?: number | string;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when stop() had to SIGKILL it. */
  killed: boolean;
}

export interface Gateway {
  /** http://127.0.0.1:PORT */
  url: string;
  /** tcp://127.0.0.1:PORT, for `docker -H`. */
  host: string;
  port: number;
  /** http://127.0.0.1:PORT/metrics */
  metricsUrl: string;
  metricsPort: number;
  pid: number;
  dir: string;
  configFile: string;
  policyFile: string;
  secretFile: string;
  /** The HS256 secret: the secret file's text. */
  secret: string;
  auditFile: string;
  token(sub: string, groups: string[], ttl?: number | string): string;
  /** A DOCKER_CONFIG dir whose config.json sends `Authorization: Bearer <token(sub, groups)>`. */
  dockerConfigDir(sub: string, groups: string[], ttl?: number | string): Promise<string>;
  /** The docker CLI through this gateway as `who` (null: no credentials at all). */
  dockerAs(who: Identity | null, args: string[], opts?: Omit<DockerOptions, 'host' | 'configDir'>): Promise<DockerResult>;
  /** Parsed audit records written so far. */
  audit(): Promise<Record<string, unknown>[]>;
  /** Everything the gateway wrote to stderr (its JSON log lines) so far. */
  stderr(): string;
  stdout(): string;
  running(): boolean;
  /** Resolves when the process has exited, however it ended. */
  exited: Promise<ExitInfo>;
  /** SIGTERM, then SIGKILL after `timeoutMs` (default 10 s). Idempotent. */
  stop(timeoutMs?: number): Promise<ExitInfo>;
}

const allGateways = new Set<Gateway>();
const liveChildren = new Set<ChildProcess>();

// A worker that dies (or a test that forgets stop()) must not leave gateways behind.
process.once('exit', () => {
  for (const c of liveChildren) c.kill('SIGKILL');
});

type Json = Record<string, unknown>;

function isPlainObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function mergeConfig(base: Json, over: Json): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) delete out[k];
    else if (isPlainObject(v) && isPlainObject(out[k])) out[k] = mergeConfig(out[k] as Json, v);
    else out[k] = v;
  }
  return out;
}

function portOf(hostPort: unknown, field: string, line: string): number {
  const m = typeof hostPort === 'string' ? /:(\d+)$/.exec(hostPort) : null;
  const port = m ? Number(m[1]) : NaN;
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error(`the gateway's "listening" log line has no usable "${field}" (HOST:PORT): ${line}`);
  }
  return port;
}

const MAX_LOG_CHARS = 8 * 1024 * 1024;

/**
 * Starts `node dist/src/cli/main.js serve --config <generated>` in a fresh temp dir and waits for
 * its `{"msg":"listening","listen":"127.0.0.1:P","metrics":"127.0.0.1:M"}` log line.
 */
export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const main = opts.main ?? CLI_MAIN;
  if (!existsSync(main)) {
    throw new Error(`${main} does not exist: test/global-setup.ts builds it (npm run build)`);
  }
  const dir = await tempDir('dockward-e2e-');
  const secret = randomBytes(48).toString('hex');
  const secretFile = path.join(dir, 'secret');
  const policyFile = path.join(dir, 'policy.yaml');
  const auditFile = path.join(dir, 'audit.log');
  const configFile = path.join(dir, 'dockward.yaml');
  const status = e2eStatus();
  const upstream = opts.upstream ?? (status.available ? status.sock : path.join(dir, 'no-daemon.sock'));

  // No trailing newline: the key is the same whether or not the gateway trims the file.
  await writeFile(secretFile, secret, { mode: 0o600 });
  await writeFile(policyFile, opts.policyYaml);
  const config = mergeConfig(
    {
      listen: '127.0.0.1:0',
      upstream: `unix://${upstream}`,
      auth: { jwt: { algorithms: ['HS256'], secretFile } },
      policies: [policyFile],
      metrics: { listen: '127.0.0.1:0' },
      audit: { file: auditFile },
    },
    opts.config ?? {},
  );
  await writeFile(configFile, toYaml(config));

  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    // DOCKWARD_CONFIG/LISTEN/UPSTREAM would override the generated config; NODE_OPTIONS may carry
    // the test runner's loaders.
    if (!k.startsWith('DOCKWARD_') && k !== 'NODE_OPTIONS') env[k] = v;
  }
  Object.assign(env, opts.env);

  const child = spawn(process.execPath, [...NODE_FLAGS, main, 'serve', '--config', configFile], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveChildren.add(child);
  let stderrText = '';
  let stdoutText = '';
  let killed = false;
  let exitInfo: ExitInfo | undefined;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.on('exit', (code, signal) => {
      liveChildren.delete(child);
      exitInfo = { code, signal, killed };
      resolve(exitInfo);
    });
  });
  const spawnFailed = new Promise<Error>((resolve) => child.on('error', resolve));

  let onLine: ((line: string) => void) | undefined;
  const collect = (which: 'stdout' | 'stderr') => {
    let partial = '';
    return (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      if (which === 'stderr') stderrText = (stderrText + text).slice(-MAX_LOG_CHARS);
      else stdoutText = (stdoutText + text).slice(-MAX_LOG_CHARS);
      partial += text;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) onLine?.(l);
    };
  };
  child.stderr.on('data', collect('stderr'));
  child.stdout.on('data', collect('stdout'));

  const readyTimeoutMs = opts.readyTimeoutMs ?? 20_000;
  const describeFailure = (what: string) =>
    new Error(`gateway ${what}\n  config ${configFile}:\n${indent(toYaml(config))}\n  stderr:\n${indent(stderrText)}\n  stdout:\n${indent(stdoutText)}`);

  let ready: { port: number; metricsPort: number };
  try {
    ready = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(describeFailure(`logged no "listening" line within ${readyTimeoutMs} ms`)), readyTimeoutMs);
      const settle = (f: () => void) => {
        clearTimeout(timer);
        onLine = undefined;
        f();
      };
      onLine = (line) => {
        let rec: unknown;
        try {
          rec = JSON.parse(line);
        } catch {
          return;
        }
        if (!isPlainObject(rec) || rec.msg !== 'listening') return;
        try {
          const port = portOf(rec.listen, 'listen', line);
          const metricsPort = portOf(rec.metrics, 'metrics', line);
          settle(() => resolve({ port, metricsPort }));
        } catch (e) {
          settle(() => reject(describeFailure((e as Error).message)));
        }
      };
      void exited.then((x) => settle(() => reject(describeFailure(`exited before it was ready (code ${x.code}, signal ${x.signal})`))));
      void spawnFailed.then((e) => settle(() => reject(describeFailure(`could not be spawned: ${e.message}`))));
    });
  } catch (e) {
    child.kill('SIGKILL');
    await exited;
    throw e;
  }

  const identityDirs = new Map<string, Promise<string>>();
  let stopping: Promise<ExitInfo> | undefined;
  const gw: Gateway = {
    url: `http://127.0.0.1:${ready.port}`,
    host: `tcp://127.0.0.1:${ready.port}`,
    port: ready.port,
    metricsUrl: `http://127.0.0.1:${ready.metricsPort}/metrics`,
    metricsPort: ready.metricsPort,
    pid: child.pid!,
    dir,
    configFile,
    policyFile,
    secretFile,
    secret,
    auditFile,
    token: (sub, groups, ttl) => mintToken({ secret, sub, groups, ttl }),
    dockerConfigDir: (sub, groups, ttl) =>
      writeDockerConfigDir({ HttpHeaders: { Authorization: `Bearer ${mintToken({ secret, sub, groups, ttl })}` } }, dir),
    async dockerAs(who, args, o = {}) {
      let configDir: string;
      if (who === null) {
        configDir = await defaultConfigDir();
      } else {
        // One directory per identity and gateway: tokens are minted once, not per command.
        const key = JSON.stringify([who.sub, who.groups, who.ttl]);
        let p = identityDirs.get(key);
        if (!p) {
          p = gw.dockerConfigDir(who.sub, who.groups, who.ttl);
          identityDirs.set(key, p);
        }
        configDir = await p;
      }
      return docker(args, { ...o, host: gw.host, configDir });
    },
    async audit() {
      // A request's record is written after its answer (batched for up to 100 ms, through the
      // thread pool): the client sees the answer before the record lands. Read once the file has
      // been still for longer than a batch waits.
      let text: string;
      try {
        text = await readFile(auditFile, 'utf8');
        for (let i = 0, still = 0; i < 60 && still < 3; i++) {
          await new Promise((r) => setTimeout(r, 50));
          const again = await readFile(auditFile, 'utf8');
          still = again === text ? still + 1 : 0;
          text = again;
        }
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw e;
      }
      return text
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    stderr: () => stderrText,
    stdout: () => stdoutText,
    running: () => exitInfo === undefined,
    exited,
    stop(timeoutMs = 10_000) {
      stopping ??= (async () => {
        if (exitInfo) return exitInfo;
        child.kill('SIGTERM');
        const timer = setTimeout(() => {
          killed = true;
          child.kill('SIGKILL');
        }, timeoutMs);
        const info = await exited;
        clearTimeout(timer);
        return info;
      })();
      return stopping;
    },
  };
  allGateways.add(gw);
  return gw;
}

function indent(text: string): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}

/** Prints the tail of a gateway's stderr (its log) for a failing test. */
export function printGatewayLogs(gw: Gateway, lines = 200): void {
  const log = gw.stderr().trimEnd().split('\n').slice(-lines).join('\n');
  console.error(`--- gateway pid ${gw.pid} (${gw.url}, config ${gw.configFile}) stderr, last ${lines} lines ---\n${log}\n--- end ---`);
}

export async function stopAllGateways(): Promise<void> {
  await Promise.all([...allGateways].map((g) => g.stop()));
}

/**
 * Deletes the temp dirs (secrets, configs, audit logs) except those of running gateways;
 * DOCKWARD_TEST_KEEP=1 keeps them all to look at.
 */
export async function removeGatewayDirs(): Promise<void> {
  if (process.env.DOCKWARD_TEST_KEEP === '1') return;
  const busy = new Set([...allGateways].filter((g) => g.running()).map((g) => g.dir));
  const doomed = [...tempDirs].filter((d) => !busy.has(d));
  await Promise.all(doomed.map((d) => rm(d, { recursive: true, force: true })));
  for (const d of doomed) tempDirs.delete(d);
  emptyConfigDir = undefined;
  for (const g of allGateways) if (!g.running()) allGateways.delete(g);
}

/** A scratch directory (bind-mount sources, request bodies) that the suite's cleanup deletes. */
export function scratchDir(): Promise<string> {
  return tempDir('dockward-scratch-');
}

// ---------------------------------------------------------------------------------------------
// Long-running CLI commands (`logs -f`, `events`) and TLS material

export interface DockerStream {
  /** Everything the CLI wrote to stdout so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when stdout contains `text` (or rejects after `timeoutMs`, default 20 s). */
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<void>;
  /** Resolves when the CLI has exited, however it ended. */
  exited: Promise<DockerResult>;
  /** SIGKILL, then wait for the exit. */
  kill(): Promise<DockerResult>;
}

/**
 * Starts the docker CLI without waiting for it to end: for `logs -f` and other streams that a
 * test watches while something else happens. Killed at `timeoutMs` (default 120 s) at the latest.
 */
export async function dockerStream(args: string[], opts: DockerOptions): Promise<DockerStream> {
  const { env, fullArgs, command } = await dockerInvocation(args, opts);
  const child = spawn(DOCKER_CLI, fullArgs, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  liveChildren.add(child);
  let out = '';
  let err = '';
  const outBytes: Buffer[] = [];
  const waiters = new Set<() => void>();
  child.stdout.on('data', (b: Buffer) => {
    outBytes.push(b);
    out += b.toString('utf8');
    for (const w of waiters) w();
  });
  child.stderr.on('data', (b: Buffer) => {
    err += b.toString('utf8');
  });
  child.stdin.on('error', () => {});
  child.stdin.end(opts.input ?? '');
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, opts.timeoutMs ?? 120_000);
  const exited = new Promise<DockerResult>((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      liveChildren.delete(child);
      for (const w of waiters) w();
      resolve({ code, signal, stdout: out, stdoutBytes: Buffer.concat(outBytes), stderr: err, timedOut, command });
    });
  });
  let done = false;
  void exited.then(() => {
    done = true;
  });
  return {
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(text, timeoutMs = 20_000) {
      const has = () => (typeof text === 'string' ? out.includes(text) : text.test(out));
      return new Promise((resolve, reject) => {
        const check = () => {
          if (has()) {
            cleanup();
            resolve();
          } else if (done) {
            cleanup();
            reject(new Error(`${command} exited before printing ${String(text)}\nstdout:\n${out}\nstderr:\n${err}`));
          }
        };
        const t = setTimeout(() => {
          cleanup();
          reject(new Error(`${command} did not print ${String(text)} within ${timeoutMs} ms\nstdout:\n${out.slice(-2000)}\nstderr:\n${err}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(t);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async kill() {
      child.kill('SIGKILL');
      return exited;
    },
  };
}

export interface TestCertificate {
  cert: string;
  key: string;
  /** A directory laid out like the docker CLI's DOCKER_CERT_PATH: ca.pem, cert.pem, key.pem. */
  dir: string;
}

export interface ClientCertOptions {
  /** Subject organizational units (mTLS groups). */
  ou?: string[];
  /** subjectAltName entries, e.g. `email:alice@example.com`, `DNS:ci.example.com`. */
  san?: string[];
  /** Signed by the rogue CA, which the gateway does not trust. */
  rogue?: boolean;
}

export interface TestPki {
  dir: string;
  /** The CA that signs the server certificate and trusted client certificates. */
  caFile: string;
  /** Another CA: certificates it signs must be refused. */
  rogueCaFile: string;
  /** For 127.0.0.1 and localhost. */
  serverCert: string;
  serverKey: string;
  /** A client certificate with subject CN=`cn`. */
  client(cn: string, opts?: ClientCertOptions): Promise<TestCertificate>;
}

function openssl(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`openssl ${args.join(' ')} exited ${code}: ${err}`))));
  });
}

/** Subject text for `openssl -subj`: `/` and `\` in values are escaped. */
function subjectOf(fields: [string, string][]): string {
  return fields.map(([k, v]) => `/${k}=${v.replace(/[\\/]/g, (c) => `\\${c}`)}`).join('');
}

/**
 * A throw-away PKI made with the openssl CLI (EC P-256, valid for two days): a CA, a server
 * certificate for 127.0.0.1, and client certificates on demand. Deleted by the suite's cleanup.
 */
export async function makeTestPki(): Promise<TestPki> {
  const dir = await tempDir('dockward-pki-');
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const makeCa = async (name: string) => {
    await openssl(['req', '-x509', ...newKey, '-keyout', `${name}-key.pem`, '-out', `${name}.pem`, '-days', '2', '-subj', subjectOf([['CN', `dockward test ${name}`]]),
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  };
  await makeCa('ca');
  await makeCa('rogue-ca');
  let serial = 0;
  const issue = async (name: string, subject: [string, string][], ext: string[], ca: string) => {
    serial += 1;
    await writeFile(path.join(dir, `${name}.ext`), ext.join('\n') + '\n');
    await openssl(['req', ...newKey, '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', subjectOf(subject)], dir);
    await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}-key.pem`, '-set_serial', String(1000 + serial), '-days', '2', '-out', `${name}-cert.pem`, '-extfile', `${name}.ext`], dir);
    return { cert: path.join(dir, `${name}-cert.pem`), key: path.join(dir, `${name}-key.pem`) };
  };
  const server = await issue('server', [['CN', 'localhost']], ['subjectAltName=IP:127.0.0.1,DNS:localhost', 'extendedKeyUsage=serverAuth', 'keyUsage=critical,digitalSignature'], 'ca');
  let clients = 0;
  return {
    dir,
    caFile: path.join(dir, 'ca.pem'),
    rogueCaFile: path.join(dir, 'rogue-ca.pem'),
    serverCert: server.cert,
    serverKey: server.key,
    async client(cn, o = {}) {
      clients += 1;
      const name = `client-${clients}`;
      const ext = ['extendedKeyUsage=clientAuth', 'keyUsage=critical,digitalSignature'];
      if (o.san && o.san.length > 0) ext.push(`subjectAltName=${o.san.join(',')}`);
      const subject: [string, string][] = [['CN', cn], ...(o.ou ?? []).map((u): [string, string] => ['OU', u])];
      const c = await issue(name, subject, ext, o.rogue ? 'rogue-ca' : 'ca');
      const certDir = path.join(dir, `${name}-docker`);
      await mkdir(certDir);
      // The CLI checks the gateway's certificate against ca.pem, whoever signed the client's.
      await copyFile(path.join(dir, 'ca.pem'), path.join(certDir, 'ca.pem'));
      await copyFile(c.cert, path.join(certDir, 'cert.pem'));
      await copyFile(c.key, path.join(certDir, 'key.pem'));
      return { ...c, dir: certDir };
    },
  };
}
