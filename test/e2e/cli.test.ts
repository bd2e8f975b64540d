/**
 * The `dockward` command line as a user runs it: `node dist/src/cli/main.js` (built by global
 * setup) for `policy check`, `policy explain`, `token` and `serve` refusing to start. None of it
 * needs a daemon, so it always runs; only the last block (the minted token with the real docker
 * CLI) is end-to-end.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI_MAIN,
  describeE2E,
  docker,
  REPO_ROOT,
  removeGatewayDirs,
  startGateway,
  stopAllGateways,
  writeDockerConfigDir,
  type Gateway,
} from './harness.js';

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** `node dist/src/cli/main.js ...args`, without the DOCKWARD_* variables of the test process. */
function dockward(args: string[], opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('DOCKWARD_') && k !== 'NODE_OPTIONS') env[k] = v;
  Object.assign(env, opts.env);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI_MAIN, ...args], { cwd: opts.cwd ?? REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 20_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut });
    });
  });
}

function decodeJwt(token: string): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const [h, p] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h!, 'base64url').toString('utf8')) as Record<string, unknown>,
    payload: JSON.parse(Buffer.from(p!, 'base64url').toString('utf8')) as Record<string, unknown>,
  };
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'dockward-cli-'));
});
afterAll(async () => {
  await stopAllGateways();
  await removeGatewayDirs();
  await rm(dir, { recursive: true, force: true });
});

async function write(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, text, { mode: 0o600 });
  return file;
}

/** Four mistakes, each on a known line. */
const BAD_POLICY = `rules:
  - name: readers
    effect: allow
    subjects: ["*"]
    actions: [container.lsit]
  - name: readers
    effect: allow
    subjects: ["*"]
    actions: [container.kill]
    when:
      query.signal: { oneOf: [TERM] }
  - name: undecided
    effect: maybe
    subjects: ["*"]
    actions: [container.list]
`;

/** The error lines `policy check` and `serve` must print for BAD_POLICY (the file name prefixed). */
const BAD_POLICY_ERRORS: [number, RegExp][] = [
  [5, /unknown action "container\.lsit" \(did you mean "container\.list"\?\)/],
  [6, /duplicate rule name "readers"/],
  [11, /unknown matcher "oneOf"/],
  [13, /effect must be allow or deny, not "maybe"/],
];

function expectEveryPolicyError(output: string, file: string): void {
  for (const [line, message] of BAD_POLICY_ERRORS) {
    const hit = output.split('\n').find((l) => l.trim().startsWith(`${file}:${line}:`));
    expect(hit, `no error for ${file}:${line} in:\n${output}`).toBeDefined();
    expect(hit).toMatch(message);
  }
}

// ---------------------------------------------------------------------------------------------

describe('dockward policy check', () => {
  const shipped = async () => ['policies/default.yaml', ...(await readdir(path.join(REPO_ROOT, 'policies', 'examples'))).filter((f) => f.endsWith('.yaml')).map((f) => `policies/examples/${f}`)];

  it('exits 0 on every shipped policy file', async () => {
    const files = await shipped();
    expect(files.length).toBeGreaterThan(1);
    for (const f of files) {
      const r = await dockward(['policy', 'check', f]);
      expect(r.code, `${f}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toBe(`ok: 1 file(s): ${f}\n`);
    }
  });

  it('exits 0 on all of them at once (rule names do not clash)', async () => {
    const files = await shipped();
    const r = await dockward(['policy', 'check', ...files]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`ok: ${files.length} file(s)`);
  });

  it('exits 1 and lists every error of a bad file with file:line', async () => {
    const file = await write('bad-policy.yaml', BAD_POLICY);
    const r = await dockward(['policy', 'check', file]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expectEveryPolicyError(r.stderr, file);
    expect(r.stderr).toContain(`${BAD_POLICY_ERRORS.length} error(s)`);
  });

  it('reports a YAML syntax error with its line', async () => {
    const file = await write('broken.yaml', 'rules:\n  - name: x\n    effect: allow\n    actions: [container.list\n');
    const r = await dockward(['policy', 'check', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:\\d+:\\d+: `, 'm'));
  });

  it('exits 1 for a file that does not exist, saying so', async () => {
    const r = await dockward(['policy', 'check', path.join(dir, 'nope.yaml')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('nope.yaml');
    expect(r.stderr).toMatch(/no such file|no file matches|not found/i);
  });

  it('checks the files a config names (--config)', async () => {
    const good = await write('good-policy.yaml', 'rules:\n  - name: ping\n    effect: allow\n    subjects: ["*"]\n    actions: [system.ping]\n');
    const bad = path.join(dir, 'bad-policy.yaml');
    await writeFile(bad, BAD_POLICY);
    const secret = await write('check-secret', 'c'.repeat(64));
    const config = (policies: string[]) =>
      `listen: 127.0.0.1:0\nupstream: unix:///nonexistent/docker.sock\nauth:\n  jwt:\n    algorithms: [HS256]\n    secretFile: ${secret}\npolicies: ${JSON.stringify(policies)}\n`;
    const ok = await dockward(['policy', 'check', '--config', await write('good-config.yaml', config([good]))]);
    expect(ok.code, ok.stderr).toBe(0);
    const notOk = await dockward(['policy', 'check', '--config', await write('bad-config.yaml', config([good, bad]))]);
    expect(notOk.code).toBe(1);
    expectEveryPolicyError(notOk.stderr, bad);
  });
});

describe('dockward policy explain with a body', () => {
  it.each([
    ['a privileged create body is denied naming the fact', '{"Image":"busybox:local","HostConfig":{"privileged":true}}', 1, /decision: deny by rule default-deny: rule ci-creates-confined-containers needs create\.privileged/],
    ['a benign create body is allowed', '{"Image":"busybox:local","Cmd":["true"]}', 0, /decision: allow by rule ci-creates-confined-containers/],
  ])('%s (the facts serve derives)', async (_n, body, code, pattern) => {
    const file = await write(`body-${code}.json`, body);
    const r = await dockward(['policy', 'explain', '--policy', 'policies/examples/ci-runner.yaml', '--sub', 'runner', '--groups', 'ci', 'POST', '/v1.41/containers/create', '--body', file]);
    expect(r.stdout).toMatch(pattern);
    expect(r.code).toBe(code);
  });
});

describe('dockward policy explain', () => {
  const POLICY = `rules:
  - name: dev-runs-containers
    effect: allow
    subjects: ["group:dev"]
    actions: [container.start, container.stop, container.kill]
  - name: no-sigkill
    effect: deny
    subjects: ["*"]
    actions: [container.kill]
    when:
      query.signal: KILL
`;
  let policy: string;
  beforeAll(async () => {
    policy = await write('explain.yaml', POLICY);
  });

  it.each<[string, string[], number, string[]]>([
    [
      'allowed: names the action and the allowing rule',
      ['--sub', 'alice', '--groups', 'dev', 'POST', '/v1.41/containers/abc/kill?signal=TERM'],
      0,
      ['action:  container.kill {"id":"abc"}', 'decision: allow by rule dev-runs-containers'],
    ],
    [
      'denied by a deny rule whose condition holds',
      ['--sub', 'alice', '--groups', 'dev', 'POST', '/v1.41/containers/abc/kill?signal=KILL'],
      1,
      ['action:  container.kill', 'decision: deny by rule no-sigkill: query.signal == "KILL", request has "KILL"'],
    ],
    [
      'denied by default: nobody allows it',
      ['--sub', 'bob', 'POST', '/containers/abc/stop'],
      1,
      ['action:  container.stop {"id":"abc"}', 'decision: deny by rule default-deny: no rule allows container.stop for user:bob'],
    ],
    [
      'an unversioned path is the same action',
      ['--sub', 'alice', '--groups', 'dev', 'POST', '/containers/abc/start'],
      0,
      ['action:  container.start {"id":"abc"}', 'decision: allow by rule dev-runs-containers'],
    ],
    [
      'an unknown endpoint is "unknown" and denied',
      ['--sub', 'alice', '--groups', 'dev', 'GET', '/v1.41/no/such/endpoint'],
      1,
      ['action:  unknown', 'decision: deny by rule default-deny'],
    ],
  ])('%s', async (_name, args, code, expected) => {
    const r = await dockward(['policy', 'explain', '--policy', policy, ...args]);
    expect(r.code, r.stderr).toBe(code);
    for (const e of expected) expect(r.stdout).toContain(e);
  });

  it('lists each rule it tried with its file:line', async () => {
    const r = await dockward(['policy', 'explain', '--policy', policy, '--sub', 'alice', '--groups', 'dev', 'POST', '/v1.41/containers/abc/kill']);
    expect(r.stdout).toContain(`dev-runs-containers (allow, ${policy}:2)`);
    expect(r.stdout).toContain(`no-sigkill (deny, ${policy}:6)`);
  });

  it('refuses a body dockerd would read differently (two spellings of one key) before any policy', async () => {
    const body = await write('dup-body.json', '{"Image":"busybox:local","image":"evil:latest"}');
    const r = await dockward(['policy', 'explain', '--policy', policy, '--sub', 'alice', '--groups', 'dev', '--body', body, 'POST', '/v1.41/containers/create']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^refused before policy: cannot read the body as dockerd would: .*\(HTTP 400\)$/m);
  });

  it('exits 2 with the usage when the request is missing', async () => {
    const r = await dockward(['policy', 'explain', '--policy', policy, '--sub', 'alice']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('usage:');
  });
});

describe('dockward token', () => {
  let secretFile: string;
  beforeAll(async () => {
    secretFile = await write('token-secret', 's'.repeat(64) + '\n');
  });

  it('prints one HS256 JWT with sub, groups and the requested lifetime', async () => {
    const r = await dockward(['token', '--secret-file', secretFile, '--sub', 'alice', '--groups', 'dev,ops', '--ttl', '15m']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const { header, payload } = decodeJwt(r.stdout.trim());
    expect(header).toMatchObject({ alg: 'HS256', typ: 'JWT' });
    expect(payload).toMatchObject({ sub: 'alice', groups: ['dev', 'ops'] });
    expect(Number(payload.exp) - Number(payload.iat)).toBe(15 * 60);
  });

  it.each<[string, () => string[], RegExp]>([
    ['no --secret-file', () => ['token', '--sub', 'alice'], /--secret-file/],
    ['a secret file that does not exist', () => ['token', '--secret-file', '/nonexistent/secret', '--sub', 'alice'], /cannot read \/nonexistent\/secret/],
    ['a bad --ttl', () => ['token', '--secret-file', secretFile, '--sub', 'alice', '--ttl', 'soon'], /--ttl "soon"/],
  ])('exits non-zero and says what is wrong for %s', async (_name, args, message) => {
    const r = await dockward(args());
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
  });

  it('a short secret is refused: it could be guessed', async () => {
    const short = await write('short-secret', 'too-short\n');
    const r = await dockward(['token', '--secret-file', short, '--sub', 'alice']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/at least 32/);
  });

  describe('the gateway accepts what it prints (no daemon needed: the policy answers first)', () => {
    let gw: Gateway;
    beforeAll(async () => {
      gw = await startGateway({
        policyYaml: `rules:
  - name: ping
    effect: allow
    subjects: ["*"]
    actions: [system.ping.head, system.ping]
  - name: ops-may-not-list
    effect: deny
    subjects: ["group:ops"]
    actions: [container.list]
`,
      });
    });

    it('its sub and groups reach the decision: 403 from the group\'s rule, naming the user', async () => {
      const t = await dockward(['token', '--secret-file', gw.secretFile, '--sub', 'alice', '--groups', 'dev,ops']);
      expect(t.code, t.stderr).toBe(0);
      const res = await fetch(`${gw.url}/v1.41/containers/json`, { headers: { Authorization: `Bearer ${t.stdout.trim()}` } });
      expect(res.status).toBe(403);
      expect(await res.json()).toEqual({ message: 'dockward: denied by rule ops-may-not-list: container.list is denied to user:alice' });
    });

    it('a token minted from another secret is refused with 401', async () => {
      const other = await write('other-secret', 'o'.repeat(64));
      const t = await dockward(['token', '--secret-file', other, '--sub', 'alice', '--groups', 'ops']);
      const res = await fetch(`${gw.url}/v1.41/containers/json`, { headers: { Authorization: `Bearer ${t.stdout.trim()}` } });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { message: string }).message).toBe('dockward: invalid token: token signature does not verify');
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('dockward serve refuses to start, and says what to fix', () => {
  let secret: string;
  let goodPolicy: string;
  beforeAll(async () => {
    secret = await write('serve-secret', 'k'.repeat(64));
    goodPolicy = await write('serve-policy.yaml', 'rules:\n  - name: ping\n    effect: allow\n    subjects: ["*"]\n    actions: [system.ping]\n');
  });

  const base = () => ({
    listen: '127.0.0.1:0',
    upstream: 'unix:///nonexistent/docker.sock',
    auth: `\n  jwt:\n    algorithms: [HS256]\n    secretFile: ${secret}`,
    policies: JSON.stringify([goodPolicy]),
    metrics: '\n  listen: 127.0.0.1:0',
  });
  const yamlOf = (c: Record<string, string>) => Object.entries(c).map(([k, v]) => `${k}: ${v}`).join('\n') + '\n';

  /** Each row: the config text, and the lines (after the file name) stderr must hold. */
  const rows: [string, () => Promise<{ config: string; env?: Record<string, string> }>, (file: string) => (string | RegExp)[]][] = [
    [
      'a config with several mistakes: every one is listed, with its line',
      async () => ({
        config:
          'listen: localhost\n' + // 1
          'upstream: tcp://10.0.0.1:2375\n' + // 2
          'auth:\n' + // 3
          '  jwt:\n' + // 4
          '    algorithms: [none]\n' + // 5
          `    secretFile: ${secret}\n` + // 6
          `policies: ${JSON.stringify([goodPolicy])}\n` + // 7
          'metrics: { listen: 127.0.0.1:0 }\n' + // 8
          'colour: blue\n', // 9
      }),
      (f) => [
        'invalid configuration:',
        new RegExp(`${f}:1:\\d+: listen: must be HOST:PORT`),
        new RegExp(`${f}:2:\\d+: upstream: must be unix://`),
        new RegExp(`${f}:5:\\d+: auth\\.jwt\\.algorithms\\.0: unsupported algorithm "none"`),
        new RegExp(`${f}:9:\\d+: colour: unknown key`),
      ],
    ],
    [
      'a config without any way to authenticate',
      async () => ({ config: yamlOf({ ...base(), auth: '{}' }) }),
      (f) => [new RegExp(`${f}:\\d+:\\d+: auth: no way to authenticate callers`)],
    ],
    [
      'a missing secret file',
      async () => ({ config: yamlOf({ ...base(), auth: `\n  jwt:\n    algorithms: [HS256]\n    secretFile: ${path.join(dir, 'no-such-secret')}` }) }),
      () => [`auth.jwt.secretFile: cannot read ${path.join(dir, 'no-such-secret')}`],
    ],
    [
      'an invalid policy: every error, with file and line',
      async () => ({ config: yamlOf({ ...base(), policies: JSON.stringify([await write('serve-bad-policy.yaml', BAD_POLICY)]) }) }),
      () => ['invalid policy:', ...BAD_POLICY_ERRORS.map(([line, m]) => new RegExp(`${path.join(dir, 'serve-bad-policy.yaml').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:${line}:\\d+: ${m.source}`))],
    ],
    [
      'a policy file that does not exist',
      async () => ({ config: yamlOf({ ...base(), policies: JSON.stringify([path.join(dir, 'missing-policy.yaml')]) }) }),
      () => ['invalid policy:', 'missing-policy.yaml'],
    ],
    [
      'a bad DOCKWARD_UPSTREAM in the environment',
      async () => ({ config: yamlOf(base()), env: { DOCKWARD_UPSTREAM: 'http://localhost:2375' } }),
      () => [/DOCKWARD_UPSTREAM: must be unix:\/\//],
    ],
  ];

  it.each(rows)('%s', async (_name, make, expected) => {
    const { config, env } = await make();
    const file = await write(`serve-${Math.random().toString(36).slice(2)}.yaml`, config);
    const r = await dockward(['serve', '--config', file], { cwd: dir, env });
    expect(r.timedOut, `it started instead of refusing:\n${r.stderr}`).toBe(false);
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.stderr).toContain('dockward: cannot start:');
    expect(r.stderr).not.toContain('"msg":"listening"');
    const fileForMessages = file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    for (const e of expected(fileForMessages)) {
      if (typeof e === 'string') expect(r.stderr).toContain(e);
      else expect(r.stderr).toMatch(e);
    }
  });

  it('a config file that does not exist', async () => {
    const missing = path.join(dir, 'no-such-config.yaml');
    const r = await dockward(['serve', '--config', missing], { cwd: dir });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${missing}: cannot read config`);
  });
});

// ---------------------------------------------------------------------------------------------

describeE2E('a token from `dockward token` with the real docker CLI', () => {
  it('docker version and docker ps work through the gateway with it', async () => {
    const gw = await startGateway({
      policyYaml: `rules:
  - name: ops-read
    effect: allow
    subjects: ["group:ops"]
    actions: [system.ping.head, system.ping, system.version, container.list]
`,
    });
    const t = await dockward(['token', '--secret-file', gw.secretFile, '--sub', 'alice', '--groups', 'ops', '--ttl', '10m']);
    expect(t.code, t.stderr).toBe(0);
    const configDir = await writeDockerConfigDir({ HttpHeaders: { Authorization: `Bearer ${t.stdout.trim()}` } });
    const version = await docker(['version', '--format', '{{.Server.APIVersion}}'], { host: gw.host, configDir });
    expect(version.code, version.stderr).toBe(0);
    expect(version.stdout.trim()).toMatch(/^1\.\d+$/);
    const ps = await docker(['ps', '--format', '{{.ID}}'], { host: gw.host, configDir });
    expect(ps.code, ps.stderr).toBe(0);
  });
});
