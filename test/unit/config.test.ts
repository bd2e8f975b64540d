import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../../src/config/load.js';

const parse = (yaml: string, flags = {}, env: NodeJS.ProcessEnv = {}) => parseConfig(yaml, 'dockward.yaml', flags, env, '/srv/dockward');

const MINIMAL = `auth:\n  jwt:\n    secretFile: s\n`;

describe('config', () => {
  it('applies the documented defaults to a minimal file', () => {
    const r = parse(MINIMAL);
    expect(r.errors).toEqual([]);
    expect(r.config).toMatchObject({
      listen: '127.0.0.1:4000',
      upstream: '/var/run/docker.sock',
      policies: ['/srv/dockward/policies/default.yaml'],
      metrics: { listen: '127.0.0.1:9400' },
      audit: { file: '-' },
      limits: { inspectedBodyBytes: 1048576 },
      ownership: { ownerLabel: 'dockward.owner', teamLabel: 'dockward.team' },
      auth: { anonymous: false, jwt: { algorithms: ['HS256'], secretFile: '/srv/dockward/s', userClaim: 'sub', groupsClaim: 'groups' } },
    });
  });

  it('loads the shipped config/dockward.yaml', () => {
    const r = loadConfig('config/dockward.yaml', {}, {});
    expect(r.errors).toEqual([]);
    expect(r.config?.listen).toBe('127.0.0.1:4000');
    expect(r.config?.auth.jwt?.createSecretIfMissing).toBe(true);
  });

  it.each([
    ['unknown top-level key', `${MINIMAL}listn: 1\n`, /dockward\.yaml:4:1: listn: unknown key/],
    ['unknown nested key', `auth:\n  jwt:\n    secretFile: s\n    secret: x\n`, /:4:5: auth\.jwt\.secret: unknown key/],
    ['algorithm none', `auth:\n  jwt:\n    algorithms: [none]\n    secretFile: s\n`, /auth\.jwt\.algorithms\.0: unsupported algorithm "none".*never accepted/],
    ['HS256 without a secret', `auth:\n  jwt:\n    algorithms: [HS256]\n`, /auth\.jwt\.secretFile: algorithms HS256 need secretFile/],
    ['RS256 without a key', `auth:\n  jwt:\n    algorithms: [RS256]\n`, /auth\.jwt\.publicKeyFile: algorithms RS256 need publicKeyFile/],
    ['no authentication at all', `auth: {}\n`, /no way to authenticate callers/],
    ['bad listen address', `${MINIMAL}listen: localhost\n`, /listen: must be HOST:PORT/],
    ['tcp upstream', `${MINIMAL}upstream: tcp://1.2.3.4:2375\n`, /upstream: must be unix:/],
    ['wrong type', `${MINIMAL}limits:\n  inspectedBodyBytes: lots\n`, /limits\.inspectedBodyBytes: /],
    ['YAML syntax error', `auth: [\n`, /dockward\.yaml:\d+:\d+: /],
    ['duplicate key', `${MINIMAL}listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n`, /dockward\.yaml:\d+:\d+: .*[Uu]nique|duplicate/],
    ['not a mapping', `- a\n- b\n`, /must be a mapping/],
  ])('refuses %s with a located message', (_name, yaml, pattern) => {
    const r = parse(yaml);
    expect(r.ok).toBe(false);
    expect(r.errors.join('\n')).toMatch(pattern);
  });

  it('reports every error at once', () => {
    const r = parse(`listen: nope\nupstream: http://x\nfoo: 1\nauth:\n  jwt:\n    algorithms: [none]\n`);
    expect(r.errors.length).toBeGreaterThanOrEqual(4);
  });

  it('lets flags override the file and DOCKWARD_* env override both', () => {
    const file = `${MINIMAL}listen: 127.0.0.1:1000\n`;
    expect(parse(file, { listen: '127.0.0.1:2000' }).config?.listen).toBe('127.0.0.1:2000');
    expect(parse(file, { listen: '127.0.0.1:2000' }, { DOCKWARD_LISTEN: '127.0.0.1:3000' }).config?.listen).toBe('127.0.0.1:3000');
    expect(parse(file, {}, { DOCKWARD_UPSTREAM: 'unix:///run/d.sock' }).config?.upstream).toBe('/run/d.sock');
    expect(parse(file, { policies: ['p/*.yaml'] }).config?.policies).toEqual(['/srv/dockward/p/*.yaml']);
  });

  it('refuses a bad environment value instead of ignoring it', () => {
    const r = parse(MINIMAL, {}, { DOCKWARD_LISTEN: 'everywhere' });
    expect(r.ok).toBe(false);
    expect(r.errors.join('\n')).toMatch(/DOCKWARD_LISTEN: must be HOST:PORT.*"everywhere"/);
  });

  it('says which file it could not read', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dw-cfg-'));
    const r = loadConfig(path.join(dir, 'missing.yaml'), {}, {});
    expect(r.errors[0]).toMatch(/missing\.yaml: cannot read config/);
    writeFileSync(path.join(dir, 'ok.yaml'), MINIMAL);
    expect(loadConfig(path.join(dir, 'ok.yaml'), {}, {}).ok).toBe(true);
  });

  describe('transport and identity keys (issue 6)', () => {
    const TLS = `tls:\n  cert: c.pem\n  key: k.pem\n`;
    const MTLS_ONLY = `${TLS}  clientCA: ca.pem\nauth: {}\n`;

    it.each([
      ['a non-loopback listener without TLS', `${MINIMAL}listen: 0.0.0.0:4000\n`, /listen: 0\.0\.0\.0:4000 is not a loopback address and tls is not configured.*insecureListen: true/],
      ['a host name listener without TLS', `${MINIMAL}listen: gateway.example.com:4000\n`, /not a loopback address/],
      ['clientAuth without clientCA', `${MINIMAL}${TLS}  clientAuth: optional\n`, /tls\.clientAuth: clientAuth needs clientCA/],
      ['auth.mtls without tls.clientCA', `${MINIMAL}  mtls:\n    user: cn\n`, /auth\.mtls: auth\.mtls needs tls\.clientCA/],
      ['groups: map without groupMap', `${MTLS_ONLY.replace('auth: {}', 'auth:\n  mtls:\n    groups: map')}\n`, /auth\.mtls\.groupMap: groups: map needs groupMap/],
      ['an unknown mTLS user source', `${MTLS_ONLY.replace('auth: {}', 'auth:\n  mtls:\n    user: serial')}\n`, /auth\.mtls\.user: /],
      ['a TLS version below 1.2', `${MINIMAL}${TLS}  minVersion: TLSv1.1\n`, /tls\.minVersion: /],
      ['precedence other than mtls or jwt', `auth:\n  jwt:\n    secretFile: s\n  precedence: header\n`, /auth\.precedence: /],
      ['a plain-HTTP JWKS URL on another host', `auth:\n  jwt:\n    algorithms: [RS256]\n    jwksUrl: http://idp.example.com/jwks\n`, /auth\.jwt\.jwksUrl: must be an https:\/\/ URL/],
      ['jwksFile and jwksUrl together', `auth:\n  jwt:\n    algorithms: [RS256]\n    jwksFile: j.json\n    jwksUrl: https://idp.example.com/jwks\n`, /auth\.jwt\.jwksUrl: set jwksFile or jwksUrl, not both/],
      ['a JWKS with only HS algorithms', `auth:\n  jwt:\n    algorithms: [HS256]\n    secretFile: s\n    jwksFile: j.json\n`, /auth\.jwt\.jwksFile: jwksFile is set but no RS\*\/PS\*\/ES\*\/EdDSA algorithm is allowed/],
      ['jwksCaFile without an https jwksUrl', `auth:\n  jwt:\n    algorithms: [RS256]\n    jwksFile: j.json\n    jwksCaFile: ca.pem\n`, /auth\.jwt\.jwksCaFile: /],
      ['a JWKS refetch interval of 0', `auth:\n  jwt:\n    algorithms: [RS256]\n    jwksFile: j.json\n    jwksRefetchSeconds: 0\n`, /auth\.jwt\.jwksRefetchSeconds: /],
      ['a reload debounce of 0', `${MINIMAL}reload:\n  debounceMs: 0\n`, /reload\.debounceMs: /],
      ['a negative grace period', `${MINIMAL}shutdown:\n  graceSeconds: -1\n`, /shutdown\.graceSeconds: /],
    ])('refuses %s', (_name, yaml, pattern) => {
      const r = parse(yaml);
      expect(r.ok).toBe(false);
      expect(r.errors.join('\n')).toMatch(pattern);
    });

    it.each([
      ['a non-loopback listener with TLS', `${MINIMAL}${TLS}listen: 0.0.0.0:4000\n`],
      ['a non-loopback listener with insecureListen', `${MINIMAL}listen: 0.0.0.0:4000\ninsecureListen: true\n`],
      ['an IPv6 loopback listener', `${MINIMAL}listen: "[::1]:4000"\n`],
      ['client certificates as the only credential', MTLS_ONLY],
      ['EdDSA and PS256 from a JWKS URL', `auth:\n  jwt:\n    algorithms: [EdDSA, PS256]\n    jwksUrl: https://idp.example.com/jwks\n`],
      ['a plain-HTTP JWKS URL on loopback', `auth:\n  jwt:\n    algorithms: [RS256]\n    jwksUrl: http://127.0.0.1:8080/jwks\n`],
    ])('accepts %s', (_name, yaml) => {
      expect(parse(yaml).errors).toEqual([]);
    });

    it('refuses a non-loopback --listen or DOCKWARD_LISTEN without TLS, like the same key in the file', () => {
      expect(parse(MINIMAL, { listen: '0.0.0.0:4000' }).errors.join('\n')).toMatch(/not a loopback address/);
      expect(parse(MINIMAL, {}, { DOCKWARD_LISTEN: '10.1.2.3:4000' }).errors.join('\n')).toMatch(/not a loopback address/);
    });

    it('settles the mTLS defaults: clientAuth require, user from CN, groups from OU, certificate wins', () => {
      const r = parse(MTLS_ONLY);
      expect(r.config?.tls).toEqual({ cert: '/srv/dockward/c.pem', key: '/srv/dockward/k.pem', clientCA: '/srv/dockward/ca.pem', clientAuth: 'require', minVersion: 'TLSv1.2' });
      expect(r.config?.auth).toMatchObject({ mtls: { user: 'cn', groups: 'ou' }, precedence: 'mtls', anonymous: false });
      expect(r.config?.reload).toEqual({ watch: true, debounceMs: 250 });
      expect(r.config?.shutdown).toEqual({ graceSeconds: 10 });
    });

    it('has no mTLS identities without a client CA', () => {
      expect(parse(`${MINIMAL}${TLS}`).config?.auth.mtls).toBeUndefined();
      expect(parse(`${MINIMAL}${TLS}`).config?.tls?.clientAuth).toBeUndefined();
    });

    it('resolves the JWKS file and CA paths against the working directory', () => {
      const r = parse(`auth:\n  jwt:\n    algorithms: [ES256]\n    jwksUrl: https://idp.example.com/jwks\n    jwksCaFile: idp-ca.pem\n`);
      expect(r.config?.auth.jwt).toMatchObject({ jwksCaFile: '/srv/dockward/idp-ca.pem', jwksCacheSeconds: 600, jwksRefetchSeconds: 30 });
    });
  });
});
