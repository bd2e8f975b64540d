/**
 * TLS and mTLS on the listener, driven by the real docker CLI the way operators use dockerd's own
 * TLS (`--tlsverify`, `DOCKER_CERT_PATH`), with certificates made by openssl for the test:
 * - TLS with a bearer token: `docker --tlsverify --tlscacert ca.pem -H tcp://127.0.0.1:P ps`;
 * - mTLS: the stock `docker --tlsverify` flow with a client certificate and no token at all,
 *   user from the CN and groups from the OUs; untrusted or missing certificates refused;
 * - both credentials: `auth.precedence` decides whose identity counts, the audit says which.
 */
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import {
  describeE2E,
  docker,
  dockerDirect,
  labelArgs,
  makeTestPki,
  TEST_IMAGE,
  uniqueName,
  startGateway,
  type DockerResult,
  type Gateway,
  type TestPki,
} from './harness.js';

const POLICY = `
rules:
  - name: everyone-pings
    effect: allow
    subjects: ["*"]
    actions: [system.ping, system.ping.head, system.version]
  - name: dev-lists
    effect: allow
    subjects: ["group:dev"]
    actions: [container.list]
  - name: alice-lists
    effect: allow
    subjects: ["user:alice"]
    actions: [container.list]
  - name: dev-execs
    effect: allow
    subjects: ["group:dev"]
    actions: [container.inspect, container.exec, exec.start, exec.inspect, exec.resize]
`;

const PS = ['ps', '--format', '{{.ID}}'];

function tlsConfig(pki: TestPki, extra: Record<string, unknown> = {}) {
  return { tls: { cert: pki.serverCert, key: pki.serverKey, ...extra } };
}

/** `docker --tlsverify` with the CLI's default certificate layout in `certDir` (DOCKER_CERT_PATH). */
function dockerCerts(gw: Gateway, certDir: string, args: string[], configDir?: string): Promise<DockerResult> {
  return docker(['--tlsverify', ...args], { host: gw.host, configDir, env: { DOCKER_CERT_PATH: certDir } });
}

async function until(f: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!f()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The audit records of `action`, once there is at least one: a record is written when the gateway
 * has finished the exchange, which can be a moment after the CLI has its answer and exits.
 */
async function auditFor(gw: Gateway, action: string, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const records = (await gw.audit()).filter((r) => r.action === action);
    if (records.length > 0 || Date.now() > deadline) return records;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describeE2E('TLS on the listener', () => {
  let pki: TestPki;
  beforeAll(async () => {
    pki = await makeTestPki();
  });

  it('serves `docker --tlsverify --tlscacert ca.pem ps` with the token header', async () => {
    const gw = await startGateway({ policyYaml: POLICY, config: tlsConfig(pki) });
    const r = await gw.dockerAs({ sub: 'bob', groups: ['dev'] }, ['--tlsverify', '--tlscacert', pki.caFile, ...PS]);
    expect(r.code, r.stderr).toBe(0);
    const [rec] = await auditFor(gw, 'container.list');
    expect(rec).toMatchObject({ subject: { user: 'bob', groups: ['dev'], via: 'jwt' }, status: 200 });
  });

  it('still asks for a token over TLS, and still applies the policy', async () => {
    const gw = await startGateway({ policyYaml: POLICY, config: tlsConfig(pki) });
    const anonymous = await gw.dockerAs(null, ['--tlsverify', '--tlscacert', pki.caFile, ...PS]);
    expect(anonymous.code).not.toBe(0);
    expect(anonymous.stderr).toMatch(/dockward: authentication required/);
    const outsider = await gw.dockerAs({ sub: 'eve', groups: ['ops'] }, ['--tlsverify', '--tlscacert', pki.caFile, ...PS]);
    expect(outsider.code).not.toBe(0);
    expect(outsider.stderr).toMatch(/dockward: denied by rule default-deny/);
  });

  it('does not talk plain HTTP on the TLS port, and a client that does not trust the CA gets nothing', async () => {
    const gw = await startGateway({ policyYaml: POLICY, config: tlsConfig(pki) });
    const plain = await gw.dockerAs({ sub: 'bob', groups: ['dev'] }, PS);
    expect(plain.code).not.toBe(0);
    expect(plain.stdout).toBe('');
    const wrongCa = await gw.dockerAs({ sub: 'bob', groups: ['dev'] }, ['--tlsverify', '--tlscacert', pki.rogueCaFile, ...PS]);
    expect(wrongCa.code).not.toBe(0);
    expect(wrongCa.stderr).toMatch(/certificate/);
  });

  it('swaps its certificate on SIGHUP, and keeps the old one when the new files do not load', async () => {
    const next = await makeTestPki();
    // The files the gateway is configured with, which the test then replaces.
    const gwDirFiles = { cert: path.join(pki.dir, 'live-cert.pem'), key: path.join(pki.dir, 'live-key.pem') };
    await copyFile(pki.serverCert, gwDirFiles.cert);
    await copyFile(pki.serverKey, gwDirFiles.key);
    const gw = await startGateway({ policyYaml: POLICY, config: { tls: { cert: gwDirFiles.cert, key: gwDirFiles.key } } });
    const bob = { sub: 'bob', groups: ['dev'] };
    const psTrusting = (ca: string) => gw.dockerAs(bob, ['--tlsverify', '--tlscacert', ca, ...PS]);
    expect((await psTrusting(pki.caFile)).code).toBe(0);

    // A key that does not match the certificate: the reload fails, the old pair stays in use.
    await copyFile(next.serverCert, gwDirFiles.cert);
    process.kill(gw.pid, 'SIGHUP');
    await until(() => gw.stderr().includes('TLS reload failed'));
    expect(gw.stderr()).toMatch(/key values mismatch/);
    expect((await psTrusting(pki.caFile)).code).toBe(0);

    // The matching key as well: new connections get the new certificate.
    await copyFile(next.serverKey, gwDirFiles.key);
    process.kill(gw.pid, 'SIGHUP');
    await until(() => gw.stderr().includes('TLS certificate and key reloaded'));
    expect((await psTrusting(next.caFile)).code).toBe(0);
    expect((await psTrusting(pki.caFile)).stderr).toMatch(/certificate signed by unknown authority/);
  });

  it('refuses to start on a non-loopback address without TLS, naming the opt-in', async () => {
    await expect(startGateway({ policyYaml: POLICY, config: { listen: '0.0.0.0:0' } })).rejects.toThrow(
      /0\.0\.0\.0:0 is not a loopback address and tls is not configured.*insecureListen: true/,
    );
  });
});

describeE2E('mTLS identities (tls.clientCA)', () => {
  let pki: TestPki;
  beforeAll(async () => {
    pki = await makeTestPki();
  });

  const certOnly = (p: TestPki) => ({ ...tlsConfig(p, { clientCA: p.caFile }), auth: { jwt: undefined } });

  it('authenticates the stock `docker --tlsverify` flow with no token: user from CN, groups from OU', async () => {
    const gw = await startGateway({ policyYaml: POLICY, config: certOnly(pki) });
    const carol = await pki.client('carol', { ou: ['dev', 'qa'] });
    const r = await dockerCerts(gw, carol.dir, PS);
    expect(r.code, r.stderr).toBe(0);
    const [rec] = await auditFor(gw, 'container.list');
    expect(rec).toMatchObject({ subject: { user: 'carol', groups: ['dev', 'qa'], via: 'mtls' }, decision: 'allow', rule: 'dev-lists' });
  });

  it('authenticates a hijacked session (docker exec) by the certificate of its connection', async () => {
    const name = uniqueName('mtls-exec');
    const started = await dockerDirect(['run', '-d', '--name', name, '--network', 'none', ...labelArgs(), TEST_IMAGE, 'sleep', '300']);
    expect(started.code, started.stderr).toBe(0);
    const gw = await startGateway({ policyYaml: POLICY, config: certOnly(pki) });
    const carol = await pki.client('carol', { ou: ['dev'] });
    const r = await dockerCerts(gw, carol.dir, ['exec', name, 'echo', 'hello from exec']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('hello from exec\n');
    const [rec] = await auditFor(gw, 'exec.start');
    expect(rec).toMatchObject({ subject: { user: 'carol', via: 'mtls' } });
    // stdin to EOF and the output after it: the CLI's half-close arrives as a TLS close_notify.
    const piped = await docker(['--tlsverify', 'exec', '-i', name, 'sh', '-c', 'wc -c; echo after-eof'], { host: gw.host, env: { DOCKER_CERT_PATH: carol.dir }, input: 'x'.repeat(70_000) });
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stdout.split(/\s+/).filter(Boolean)).toEqual(['70000', 'after-eof']);
    const dave = await pki.client('dave', { ou: ['ops'] });
    const refused = await dockerCerts(gw, dave.dir, ['exec', name, 'echo', 'x']);
    expect(refused.stderr).toMatch(/dockward: denied by rule default-deny/);
  });

  it('applies the policy to the certificate identity', async () => {
    const gw = await startGateway({ policyYaml: POLICY, config: certOnly(pki) });
    const dave = await pki.client('dave', { ou: ['ops'] });
    const r = await dockerCerts(gw, dave.dir, PS);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Error response from daemon: dockward: denied by rule default-deny/);
  });

  it.each([
    ['a certificate from a CA the gateway does not trust', true],
    ['no client certificate', false],
  ])('refuses the handshake (clientAuth require) with %s', async (_name, rogue) => {
    const gw = await startGateway({ policyYaml: POLICY, config: certOnly(pki) });
    let r: DockerResult;
    if (rogue) {
      const mallory = await pki.client('alice', { ou: ['dev'], rogue: true });
      r = await dockerCerts(gw, mallory.dir, PS);
    } else {
      r = await docker(['--tlsverify', '--tlscacert', pki.caFile, ...PS], { host: gw.host });
    }
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/tls|certificate/i);
    expect(await auditFor(gw, 'container.list')).toEqual([]);
  });

  it('clientAuth optional: a caller without certificate uses a token; one with a foreign certificate gets nowhere', async () => {
    const gw = await startGateway({ policyYaml: POLICY, config: tlsConfig(pki, { clientCA: pki.caFile, clientAuth: 'optional' }) });
    const withToken = await gw.dockerAs({ sub: 'bob', groups: ['dev'] }, ['--tlsverify', '--tlscacert', pki.caFile, ...PS]);
    expect(withToken.code, withToken.stderr).toBe(0);
    expect((await auditFor(gw, 'container.list'))[0]).toMatchObject({ subject: { user: 'bob', via: 'jwt' } });
    // The docker CLI (Go) does not even send a certificate that the CA list the gateway announces
    // does not name; a client that does send it gets 401 (test/unit/mtls.test.ts). Either way: 401.
    const mallory = await pki.client('alice', { ou: ['dev'], rogue: true });
    const foreign = await dockerCerts(gw, mallory.dir, PS);
    expect(foreign.code).not.toBe(0);
    expect(foreign.stderr).toMatch(/dockward: (authentication required|the client certificate is not trusted)/);
    expect((await gw.audit()).filter((r) => (r.subject as { user?: string } | null)?.user === 'alice')).toEqual([]);
  });

  it.each([
    ['mtls', 'alice', 0],
    ['jwt', 'bob', 1],
  ] as const)('with a certificate and a token, precedence %s makes %s the caller', async (precedence, user, exit) => {
    const gw = await startGateway({
      policyYaml: POLICY,
      config: { ...tlsConfig(pki, { clientCA: pki.caFile }), auth: { precedence } },
    });
    const alice = await pki.client('alice');
    // Bob's token lists nothing (no dev group); Alice's certificate may list.
    const r = await dockerCerts(gw, alice.dir, PS, await gw.dockerConfigDir('bob', []));
    expect(r.code, r.stderr).toBe(exit);
    const [rec] = await auditFor(gw, 'container.list');
    expect(rec).toMatchObject({ subject: { user, via: precedence } });
  });
});
