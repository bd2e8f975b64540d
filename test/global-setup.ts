/**
 * vitest globalSetup: builds the project once (e2e tests spawn `node dist/src/cli/main.js`) and
 * starts the private test dockerd (scripts/dockerd-test.sh) that e2e tests reach through
 * `inject('dockerSock')` (see test/e2e/harness.ts).
 *
 * Environment:
 *   DOCKWARD_E2E_REQUIRED=1  CI: a daemon that cannot start fails the run instead of skipping e2e.
 *   DOCKWARD_E2E=0           do not start the daemon (e2e tests skip); refused when required.
 *   DOCKWARD_TEST_SKIP_BUILD=1  reuse dist/ as it is (fast unit-test loops); refused when required.
 */
import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Path of the private dockerd's unix socket, or null when e2e tests must skip. */
    dockerSock: string | null;
    /** Why there is no daemon (shown in the names of skipped suites); null when there is one. */
    dockerUnavailableReason: string | null;
  }
}

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DOCKERD_SCRIPT = path.join(REPO_ROOT, 'scripts', 'dockerd-test.sh');

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { cwd: REPO_ROOT, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

async function build(): Promise<void> {
  // The local compiler, not `npx tsc`: npx would try the registry when typescript is missing.
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const r = await run(process.execPath, [tsc, '-p', path.join(REPO_ROOT, 'tsconfig.json')], 300_000);
  if (r.code !== 0) {
    throw new Error(
      `global setup: the build failed (tsc -p tsconfig.json exited ${r.code}); e2e tests need dist/:\n` +
        tail(r.stdout + r.stderr, 60),
    );
  }
  // The tests against the source's types: vitest strips types without checking them, so a test
  // could drift from the contracts it exercises and still run.
  const t = await run(process.execPath, [tsc, '-p', path.join(REPO_ROOT, 'tsconfig.test.json')], 300_000);
  if (t.code !== 0) throw new Error(`global setup: the tests do not type-check (tsc -p tsconfig.test.json exited ${t.code}):\n${tail(t.stdout + t.stderr, 60)}`);
}

function onPath(command: string): boolean {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  return dirs.some((d) => statSync(path.join(d, command), { throwIfNoEntry: false })?.isFile() === true);
}

/** Why the daemon must not or cannot be started here, before trying; null when it may be tried. */
function precondition(required: boolean): string | null {
  if (process.env.DOCKWARD_E2E === '0') return 'disabled by DOCKWARD_E2E=0';
  if (process.platform !== 'linux') return `dockerd needs Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return `dockerd needs root (running as uid ${process.getuid?.()})`;
  // When required (CI), the script installs docker.io itself; elsewhere nobody expects
  // `npm test` to run apt-get.
  if (!required && !onPath('dockerd')) {
    return 'dockerd is not installed (scripts/dockerd-test.sh install, or apt-get install docker.io busybox-static)';
  }
  return null;
}

interface Daemon {
  sock: string;
  started: boolean;
}

async function startDaemon(): Promise<Daemon | string> {
  // The lease is this process: the script stops the daemon when the last test run that needed it
  // releases it, and never stops one that someone started by hand.
  const r = await run('bash', [DOCKERD_SCRIPT, 'start', '--lease', String(process.pid)], 900_000);
  const vars = Object.fromEntries(
    r.stdout
      .split('\n')
      .map((l) => /^(DOCKWARD_TEST_DOCKER_[A-Z]+)=(.*)$/.exec(l.trim()))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1], m[2]]),
  );
  const sock = vars.DOCKWARD_TEST_DOCKER_SOCK;
  if (r.code !== 0 || !sock) {
    return `scripts/dockerd-test.sh start failed (exit ${r.code}):\n${tail(r.stderr, 40)}`;
  }
  return { sock, started: vars.DOCKWARD_TEST_DOCKER_STARTED === '1' };
}

export default async function setup({ provide }: TestProject): Promise<() => Promise<void>> {
  const required = process.env.DOCKWARD_E2E_REQUIRED === '1';

  if (process.env.DOCKWARD_TEST_SKIP_BUILD === '1') {
    if (required) throw new Error('global setup: DOCKWARD_TEST_SKIP_BUILD=1 contradicts DOCKWARD_E2E_REQUIRED=1');
  } else {
    await build();
  }

  let reason = precondition(required);
  if (reason !== null && required) {
    throw new Error(`global setup: DOCKWARD_E2E_REQUIRED=1 but e2e tests cannot run: ${reason}`);
  }
  let daemon: Daemon | null = null;
  if (reason === null) {
    const d = await startDaemon();
    if (typeof d === 'string') reason = d;
    else daemon = d;
  }
  if (daemon === null) {
    const why = reason ?? 'unknown';
    if (required) throw new Error(`global setup: DOCKWARD_E2E_REQUIRED=1 but the test dockerd is unavailable: ${why}`);
    console.warn(`[dockward] e2e tests will be SKIPPED: ${why}`);
    provide('dockerSock', null);
    provide('dockerUnavailableReason', why);
    return async () => {};
  }

  console.info(`[dockward] e2e tests use the private dockerd at ${daemon.sock}${daemon.started ? '' : ' (already running)'}`);
  provide('dockerSock', daemon.sock);
  provide('dockerUnavailableReason', null);
  // Also for processes the tests spawn that cannot call inject().
  process.env.DOCKWARD_TEST_DOCKER_SOCK = daemon.sock;

  return async () => {
    // Stops the daemon only when this run started it and no other run still holds a lease.
    const r = await run('bash', [DOCKERD_SCRIPT, 'release', String(process.pid)], 180_000);
    if (r.code !== 0) console.warn(`[dockward] stopping the test dockerd failed (exit ${r.code}):\n${tail(r.stderr, 20)}`);
  };
}
