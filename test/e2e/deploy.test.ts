/**
 * deploy/ as shipped: the systemd unit passes `systemd-analyze verify`; the unit and the compose
 * example (with the Dockerfile's entry point) both run `dockward serve --config
 * /etc/dockward/dockward.yaml` and provide every path that config names (socket, TLS files,
 * policies, audit directory) with the hardening the issue asks for; and the shipped config, its
 * /etc/dockward paths moved under a temp root, serves `docker --tlsverify ps` to a client
 * certificate - the end of docs/operations-deploy.md. No image is built (there is no registry).
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { NODE_FLAGS } from '../../src/cli/node-flags.js';
import { describeE2E, docker, makeTestPki, REPO_ROOT, scratchDir, startGateway } from './harness.js';

const DEPLOY = path.join(REPO_ROOT, 'deploy');
const UNIT = path.join(DEPLOY, 'systemd', 'dockward.service');
const DOCKERD_DROPIN = path.join(DEPLOY, 'systemd', 'docker.service.d', 'dockward.conf');
const COMPOSE = path.join(DEPLOY, 'docker', 'compose.yaml');
const DOCKERFILE = path.join(DEPLOY, 'docker', 'Dockerfile');
const SHIPPED_CONFIG = path.join(DEPLOY, 'dockward.yaml');
const CONFIG_IN_PLACE = '/etc/dockward/dockward.yaml';
/** Where the unit and the image install the repository (dist/, node_modules/, policies/). */
const INSTALL_DIR = '/opt/dockward';
const CLI_IN_REPO = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { bin: { dockward: string } }).bin.dockward;

const run = promisify(execFile);

/** A systemd unit file: section -> key -> every value it is given, in order. */
function parseUnit(text: string): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      section = s[1]!;
      out[section] ??= {};
      continue;
    }
    const i = line.indexOf('=');
    const key = line.slice(0, i).trim();
    (out[section]![key] ??= []).push(line.slice(i + 1).trim());
  }
  return out;
}

/** The argv of `node <main> serve --config <file>`, with the installed main mapped back into the repository. */
function dockwardArgs(argv: string[]): { main: string; args: string[] } {
  expect(path.basename(argv[0]!)).toBe('node');
  // The gateway's Node flags (src/cli/node-flags.ts), then the entry point.
  expect(argv.slice(1, 1 + NODE_FLAGS.length)).toEqual(NODE_FLAGS);
  const main = argv[1 + NODE_FLAGS.length]!;
  expect(main.startsWith(INSTALL_DIR + '/'), `${main} is not under ${INSTALL_DIR}`).toBe(true);
  return { main: path.relative(INSTALL_DIR, main), args: argv.slice(2 + NODE_FLAGS.length) };
}

function under(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith('/') ? dir : dir + '/');
}

const shipped = () => {
  const r = loadConfig(SHIPPED_CONFIG, {}, {});
  expect(r.errors).toEqual([]);
  return r.config!;
};

describe('deploy/: the shipped production config', () => {
  it('loads without errors: TLS on 0.0.0.0:4000, client certificates required, policies by glob', () => {
    const c = shipped();
    expect(c.listen).toBe('0.0.0.0:4000');
    expect(c.insecureListen).toBe(false);
    expect(c.tls).toMatchObject({ clientAuth: 'require', minVersion: 'TLSv1.2' });
    for (const f of [c.tls!.cert, c.tls!.key, c.tls!.clientCA!]) expect(under(f, '/etc/dockward/tls')).toBe(true);
    expect(c.policies).toEqual(['/etc/dockward/policies/*.yaml']);
    expect(c.upstream).toBe('/var/run/docker.sock');
  });
});

describe('deploy/systemd', () => {
  const unit = parseUnit(readFileSync(UNIT, 'utf8'));
  const svc = unit.Service!;
  const one = (k: string) => {
    expect(svc[k], `[Service] ${k}`).toHaveLength(1);
    return svc[k]![0]!;
  };

  it('passes `systemd-analyze verify` without a warning', async () => {
    const analyze = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((f) => existsSync(f));
    if (!analyze) {
      if (process.env.DOCKWARD_E2E_REQUIRED === '1') throw new Error('systemd-analyze is missing (apt-get install systemd)');
      console.warn('[dockward] systemd-analyze is not installed: the unit is not verified');
      return;
    }
    const r = await run(analyze, ['verify', UNIT]).then(
      (o) => ({ code: 0, out: o.stdout + o.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
    );
    expect(r.out.split('\n').filter((l) => l.includes('dockward.service'))).toEqual([]);
    expect(r.code).toBe(0);
  });

  it('runs `dockward serve --config /etc/dockward/dockward.yaml` from the installed repository', () => {
    const { main, args } = dockwardArgs(one('ExecStart').split(/\s+/));
    expect(main).toBe(CLI_IN_REPO);
    expect(existsSync(path.join(REPO_ROOT, 'src', 'cli', 'main.ts'))).toBe(true);
    expect(args).toEqual(['serve', '--config', CONFIG_IN_PLACE]);
    expect(one('WorkingDirectory')).toBe(INSTALL_DIR);
  });

  it('runs as an unprivileged user whose only privilege is the docker group', () => {
    expect(one('User')).not.toMatch(/^(root|0)$/);
    expect(one('SupplementaryGroups').split(/\s+/)).toEqual(['docker']);
    expect(one('CapabilityBoundingSet')).toBe('');
  });

  it.each([
    ['NoNewPrivileges', 'yes'],
    ['ProtectSystem', 'strict'],
    ['ProtectHome', 'yes'],
    ['PrivateTmp', 'yes'],
    ['PrivateDevices', 'yes'],
    ['Restart', 'on-failure'],
    ['KillSignal', 'SIGTERM'],
    ['ExecReload', '/bin/kill -HUP $MAINPID'],
  ])('sets %s=%s', (key, value) => {
    expect(one(key)).toBe(value);
  });

  it('can write only where the config writes (the audit log) and reads the config and keys read-only', () => {
    const c = shipped();
    expect(one('LogsDirectory')).toBe('dockward');
    expect(under(c.audit.file, '/var/log/dockward')).toBe(true);
    const readOnly = one('ReadOnlyPaths').split(/\s+/);
    expect(readOnly).toContain('/etc/dockward');
    expect(under(CONFIG_IN_PLACE, '/etc/dockward')).toBe(true);
  });

  it('gives the gateway more time to stop than its own grace period', () => {
    expect(Number(one('TimeoutStopSec'))).toBeGreaterThan(shipped().shutdown.graceSeconds + 5);
  });

  it('ships a dockerd override that keeps only the socket-activated unix socket', () => {
    const dropin = parseUnit(readFileSync(DOCKERD_DROPIN, 'utf8')).Service!;
    // The empty ExecStart= resets the packaged command line (and its $DOCKER_OPTS).
    expect(dropin.ExecStart?.[0]).toBe('');
    expect(dropin.ExecStart).toHaveLength(2);
    const argv = dropin.ExecStart![1]!.split(/\s+/);
    const hosts = argv.flatMap((a, i) => (a === '-H' || a === '--host' ? [argv[i + 1]] : []));
    expect(hosts).toEqual(['fd://']);
    expect(argv.join(' ')).not.toMatch(/tcp:|\$DOCKER_OPTS|\$\{?DOCKER_OPTS/);
  });
});

describe('deploy/docker', () => {
  const compose = parseYaml(readFileSync(COMPOSE, 'utf8')) as { services: Record<string, Record<string, unknown>>; volumes?: Record<string, unknown> };
  const svc = compose.services.dockward!;
  const dockerfile = readFileSync(DOCKERFILE, 'utf8');
  const instruction = (name: string) => dockerfile.split('\n').filter((l) => l.startsWith(name + ' ')).map((l) => l.slice(name.length + 1).trim());
  // Compose interpolation of `${VAR:-default}` (the operator's value, else the default).
  const interpolate = (v: string) => v.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1');
  const mounts = (svc.volumes as string[]).map((v) => {
    const [source, target, mode] = interpolate(v).split(':');
    return { source: source!, target: target!, mode };
  });
  const mountOf = (p: string) => mounts.filter((m) => under(p, m.target)).sort((a, b) => b.target.length - a.target.length)[0];

  it('builds from Node 20 slim and runs as a non-root user', () => {
    expect(instruction('FROM').every((f) => f.startsWith('node:20-slim'))).toBe(true);
    expect(instruction('USER').at(-1)).toBe('node');
    expect(svc.user).toBe('node');
  });

  it('starts `dockward serve --config /etc/dockward/dockward.yaml` (Dockerfile entry point + compose command)', () => {
    const entrypoint = JSON.parse(instruction('ENTRYPOINT').at(-1)!) as string[];
    const cmd = JSON.parse(instruction('CMD').at(-1)!) as string[];
    const { main, args } = dockwardArgs([...entrypoint, ...(svc.command as string[])]);
    expect(main).toBe(CLI_IN_REPO);
    expect(args).toEqual(['serve', '--config', CONFIG_IN_PLACE]);
    expect(cmd).toEqual(svc.command);
  });

  it('mounts the shipped config at the --config path, read-only', () => {
    const m = mountOf(CONFIG_IN_PLACE)!;
    expect(m.target).toBe(CONFIG_IN_PLACE);
    expect(path.resolve(path.dirname(COMPOSE), m.source)).toBe(SHIPPED_CONFIG);
    expect(m.mode).toBe('ro');
  });

  it('mounts every path the config names: socket, TLS files and policies (read-only), audit directory (writable)', () => {
    const c = shipped();
    expect(mountOf(c.upstream)).toMatchObject({ source: '/var/run/docker.sock', target: c.upstream });
    for (const f of [c.tls!.cert, c.tls!.key, c.tls!.clientCA!]) expect(mountOf(f)?.mode, f).toBe('ro');
    const policies = mountOf(c.policies[0]!)!;
    expect(policies.mode).toBe('ro');
    expect(existsSync(path.join(path.resolve(path.dirname(COMPOSE), policies.source), 'default.yaml'))).toBe(true);
    const audit = mountOf(c.audit.file)!;
    expect(Object.keys(compose.volumes ?? {})).toContain(audit.source);
    expect(audit.mode).toBeUndefined();
  });

  it('runs with a read-only root, no capabilities, no new privileges, the docker group for the socket', () => {
    expect(svc.read_only).toBe(true);
    expect(svc.cap_drop).toEqual(['ALL']);
    expect(svc.security_opt).toContain('no-new-privileges:true');
    expect(String((svc.group_add as string[])[0])).toMatch(/^\$\{DOCKER_GID:\?/);
  });

  it('publishes the port the config listens on and waits longer than the grace period on stop', () => {
    const c = shipped();
    expect(svc.ports).toEqual([`${c.listen.split(':')[1]}:${c.listen.split(':')[1]}`]);
    expect(Number(/^(\d+)s$/.exec(String(svc.stop_grace_period))?.[1])).toBeGreaterThan(c.shutdown.graceSeconds);
  });

  it('never copies key material or local config into the image', () => {
    const sources = instruction('COPY').filter((c) => !c.startsWith('--from=')).flatMap((c) => c.split(/\s+/).slice(0, -1));
    expect(sources.sort()).toEqual(['package-lock.json', 'package.json', 'policies', 'src', 'tsconfig.json']);
    const ignore = readFileSync(path.join(DEPLOY, 'docker', 'Dockerfile.dockerignore'), 'utf8').split('\n');
    expect(ignore).toEqual(expect.arrayContaining(['**', '**/*.pem', '**/*.key', '**/*secret*']));
  });
});

describeE2E('deploy/: from nothing to `docker --tlsverify -H tcp://host:4000 ps`', () => {
  it('serves a client certificate with the shipped config and the shipped default policy', async () => {
    // The operator's /etc/dockward, under a temp root: the TLS files and the default policy.
    const root = await scratchDir();
    const etc = path.join(root, 'etc', 'dockward');
    await mkdir(path.join(etc, 'tls'), { recursive: true });
    await mkdir(path.join(etc, 'policies'));
    const pki = await makeTestPki();
    await copyFile(pki.serverCert, path.join(etc, 'tls', 'server-cert.pem'));
    await copyFile(pki.serverKey, path.join(etc, 'tls', 'server-key.pem'));
    await copyFile(pki.caFile, path.join(etc, 'tls', 'ca.pem'));
    await copyFile(path.join(REPO_ROOT, 'policies', 'default.yaml'), path.join(etc, 'policies', 'default.yaml'));

    const text = readFileSync(SHIPPED_CONFIG, 'utf8').replaceAll('/etc/dockward/', `${etc}/`).replaceAll('/var/log/dockward/', `${root}/`);
    // The test daemon's socket (the harness sets it) instead of /var/run/docker.sock.
    const { upstream: _systemSocket, ...config } = parseYaml(text) as Record<string, unknown>;
    const gw = await startGateway({
      policyYaml: 'rules: []\n',
      // Loopback and a free port instead of 0.0.0.0:4000; everything else as shipped.
      config: { ...config, listen: '127.0.0.1:0', metrics: { listen: '127.0.0.1:0' }, auth: { ...(config.auth as object), jwt: undefined } },
    });
    const alice = await pki.client('alice', { ou: ['dev'] });
    const ps = await docker(['--tlsverify', 'ps'], { host: gw.host, env: { DOCKER_CERT_PATH: alice.dir } });
    expect(ps.code, ps.stderr).toBe(0);
    expect(ps.stdout).toMatch(/^CONTAINER ID/);
    // The default policy lets callers look, not change anything.
    const rm = await docker(['--tlsverify', 'rm', 'nothing-here'], { host: gw.host, env: { DOCKER_CERT_PATH: alice.dir } });
    expect(rm.stderr).toMatch(/dockward: denied by rule default-deny/);
    // Written when the gateway has finished the exchange, which can be a moment after the CLI exits.
    const mtlsRecord = /"subject":\{"user":"alice","groups":\["dev"\],"via":"mtls"\}/;
    const audit = () => (existsSync(path.join(root, 'audit.log')) ? readFileSync(path.join(root, 'audit.log'), 'utf8') : '');
    const deadline = Date.now() + 5000;
    while (!mtlsRecord.test(audit()) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    expect(audit()).toMatch(mtlsRecord);
  });
});
