/**
 * OIDC-style tokens checked against a JWKS that a local identity provider serves over HTTPS on
 * loopback (its certificate signed by the test CA, trusted through auth.jwt.jwksCaFile). The
 * provider rotates its keys mid-test: a token signed with a new key works without a restart, a
 * key the provider withdrew stops working once the gateway has fetched the new set, and tokens
 * naming unknown keys do not make the gateway hammer the provider.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeE2E, docker, makeTestPki, startGateway, writeDockerConfigDir, type DockerResult, type Gateway } from './harness.js';

const POLICY = `
rules:
  - name: everyone-pings
    effect: allow
    subjects: ["*"]
    actions: [system.ping, system.ping.head]
  - name: dev-lists
    effect: allow
    subjects: ["group:dev"]
    actions: [container.list]
`;
const ISSUER = 'https://idp.test';
const AUDIENCE = 'dockward';

const rsaA = generateKeyPairSync('rsa', { modulusLength: 2048 });
const edB = generateKeyPairSync('ed25519');
const ecUnpublished = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = (k: KeyObject, kid: string) => ({ ...k.export({ format: 'jwk' }), kid, use: 'sig' });

function sign(alg: string, kid: string, key: KeyObject, sub = 'alice'): Promise<string> {
  return new SignJWT({ groups: ['dev'] })
    .setProtectedHeader({ alg, kid })
    .setSubject(sub)
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime('10m')
    .sign(key);
}

describeE2E('bearer tokens against a rotating JWKS over HTTPS', () => {
  let idp: https.Server;
  let keys: object[] = [];
  let fetches = 0;
  let providerDown = false;
  let jwksUrl = '';
  let caFile = '';

  beforeAll(async () => {
    const pki = await makeTestPki();
    caFile = pki.caFile;
    idp = https.createServer({ cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) }, (req, res) => {
      if (req.url !== '/.well-known/jwks.json') return void res.writeHead(404).end();
      if (providerDown) return void res.writeHead(503).end();
      fetches += 1;
      res.setHeader('content-type', 'application/jwk-set+json');
      res.end(JSON.stringify({ keys }));
    });
    await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
    jwksUrl = `https://127.0.0.1:${(idp.address() as AddressInfo).port}/.well-known/jwks.json`;
  });
  afterAll(() => {
    idp.closeAllConnections();
    idp.close();
  });

  const jwtConfig = (refetchSeconds: number) => ({
    auth: {
      jwt: {
        algorithms: ['RS256', 'ES256', 'EdDSA'],
        secretFile: undefined,
        jwksUrl,
        jwksCaFile: caFile,
        jwksRefetchSeconds: refetchSeconds,
        issuer: ISSUER,
        audience: AUDIENCE,
      },
    },
  });

  async function psWith(gw: Gateway, token: string): Promise<DockerResult> {
    const configDir = await writeDockerConfigDir({ HttpHeaders: { Authorization: `Bearer ${token}` } }, gw.dir);
    return docker(['ps', '--format', '{{.ID}}'], { host: gw.host, configDir });
  }

  async function waitForLog(gw: Gateway, re: RegExp): Promise<void> {
    const deadline = Date.now() + 20_000;
    while (!re.test(gw.stderr())) {
      if (Date.now() > deadline) throw new Error(`the gateway did not log ${re}:\n${gw.stderr()}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  }

  /** Retries while the gateway may still be inside its refetch interval; bounded. */
  async function eventually(f: () => Promise<DockerResult>, want: (r: DockerResult) => boolean): Promise<DockerResult> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const r = await f();
      if (want(r) || Date.now() > deadline) return r;
      await new Promise((res) => setTimeout(res, 500));
    }
  }

  it('accepts a token signed by a new key without a restart, and refuses one whose key was withdrawn', async () => {
    keys = [jwk(rsaA.publicKey, 'a')];
    fetches = 0;
    const gw = await startGateway({ policyYaml: POLICY, config: jwtConfig(1) });
    expect(fetches).toBe(1);

    const tokenA = await sign('RS256', 'a', rsaA.privateKey);
    const first = await psWith(gw, tokenA);
    expect(first.code, first.stderr).toBe(0);

    // Rotation, step 1: the provider publishes key b (EdDSA) next to a.
    keys = [jwk(rsaA.publicKey, 'a'), jwk(edB.publicKey, 'b')];
    const tokenB = await sign('EdDSA', 'b', edB.privateKey, 'bob');
    const withB = await eventually(() => psWith(gw, tokenB), (r) => r.code === 0);
    expect(withB.code, withB.stderr).toBe(0);
    expect(gw.stderr()).toMatch(/"kids":\["a","b"\].*"msg":"JWKS loaded"/);

    // Step 2: key a is withdrawn. SIGHUP fetches the set again; tokens verified under a are checked again.
    keys = [jwk(edB.publicKey, 'b')];
    process.kill(gw.pid, 'SIGHUP');
    await waitForLog(gw, /"kids":\["b"\].*"msg":"JWKS loaded"/);
    const afterWithdrawal = await psWith(gw, tokenA);
    expect(afterWithdrawal.code).not.toBe(0);
    expect(afterWithdrawal.stderr).toMatch(/dockward: invalid token: no key with kid "a"/);
    expect((await psWith(gw, tokenB)).code).toBe(0);

    // Audit records are written when the gateway has finished an exchange, which can be a moment
    // after the CLI exits.
    const listedBy = async () => (await gw.audit()).filter((r) => r.action === 'container.list' && r.status === 200).map((r) => (r.subject as { user: string }).user);
    const deadline = Date.now() + 5000;
    while ((await listedBy()).length < 3 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    expect(await listedBy()).toEqual(['alice', 'bob', 'bob']);
  });

  it('does not fetch the key set for every token naming an unknown key (rate limit)', async () => {
    keys = [jwk(rsaA.publicKey, 'a')];
    fetches = 0;
    // One fetch per hour at most for unknown kids: every attempt below falls inside that window.
    const gw = await startGateway({ policyYaml: POLICY, config: jwtConfig(3600) });
    expect(fetches).toBe(1);
    for (let i = 0; i < 4; i++) {
      const r = await psWith(gw, await sign('ES256', `made-up-${i}`, ecUnpublished.privateKey));
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(new RegExp(`no key with kid "made-up-${i}" \\(the key set is fetched again in \\d+s at the earliest\\)`));
    }
    expect(fetches).toBe(1);
    // A known key is still answered from the cache.
    expect((await psWith(gw, await sign('RS256', 'a', rsaA.privateKey))).code).toBe(0);
    expect(fetches).toBe(1);
  });

  it('starts while the provider is down, refuses its tokens meanwhile, and recovers when it answers', async () => {
    keys = [jwk(rsaA.publicKey, 'a')];
    providerDown = true;
    const gw = await startGateway({ policyYaml: POLICY, config: jwtConfig(1) });
    const token = await sign('RS256', 'a', rsaA.privateKey);
    try {
      expect(gw.stderr()).toMatch(/JWKS: .*HTTP 503/);
      expect(gw.stderr()).toMatch(/the key set could not be fetched/);
      const r = await psWith(gw, token);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/dockward: invalid token: no key set could be loaded/);
    } finally {
      providerDown = false;
    }
    const recovered = await eventually(() => psWith(gw, token), (r) => r.code === 0);
    expect(recovered.code, recovered.stderr).toBe(0);
  });
});
