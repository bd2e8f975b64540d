import { rm } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import tls, { type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPeerIdentities, identityFromCertificate, parseSubjectAltNames, type PeerResult } from '../../src/auth/mtls.js';
import type { TokenResult, TokenVerifier } from '../../src/auth/jwt.js';
import type { MtlsConfig } from '../../src/config/schema.js';
import { tlsServerOptions } from '../../src/main.js';
import { createAuthenticate, type AuthenticateDeps } from '../../src/pipeline/authenticate.js';
import type { RequestContext } from '../../src/pipeline/context.js';
import type { Identity } from '../../src/types.js';
import { makeTestPki, type TestPki } from '../e2e/harness.js';

const CN_OU: MtlsConfig = { user: 'cn', groups: 'ou' };

describe('parseSubjectAltNames (Node\'s subjectaltname text)', () => {
  it.each([
    ['nothing', undefined, []],
    ['one DNS name', 'DNS:ci.example.com', [{ type: 'DNS', value: 'ci.example.com' }]],
    ['several types', 'DNS:a.example, email:alice@example.com, URI:spiffe://td/alice, IP Address:10.0.0.1', [
      { type: 'DNS', value: 'a.example' }, { type: 'email', value: 'alice@example.com' }, { type: 'URI', value: 'spiffe://td/alice' }, { type: 'IP Address', value: '10.0.0.1' },
    ]],
    // Node quotes values with a comma so that one name cannot pose as two.
    ['a quoted value with a comma', 'email:"a, DNS:evil@x", DNS:b', [{ type: 'email', value: 'a, DNS:evil@x' }, { type: 'DNS', value: 'b' }]],
  ])('reads %s', (_name, text, entries) => {
    expect(parseSubjectAltNames(text)).toEqual(entries);
  });

  it.each([
    ['an unterminated quote', 'DNS:"abc'],
    ['a bare quote inside a value', 'DNS:a"b'],
    ['no type', ':abc'],
  ])('refuses %s', (_name, text) => {
    expect(parseSubjectAltNames(text)).toBeUndefined();
  });
});

describe('identityFromCertificate', () => {
  it.each([
    ['CN and OUs', CN_OU, { subject: { CN: 'alice', OU: ['dev', 'ops'] } }, { user: 'alice', groups: ['dev', 'ops'], via: 'mtls' }],
    ['CN and one OU', CN_OU, { subject: { CN: 'alice', OU: 'dev' } }, { user: 'alice', groups: ['dev'], via: 'mtls' }],
    ['CN without OU', CN_OU, { subject: { CN: 'alice' } }, { user: 'alice', groups: [], via: 'mtls' }],
    ['the email SAN', { user: 'san-email', groups: 'none' }, { subject: { CN: 'x' }, subjectaltname: 'DNS:h, email:alice@example.com' }, { user: 'alice@example.com', groups: [], via: 'mtls' }],
    ['the first DNS SAN', { user: 'san-dns', groups: 'ou' }, { subject: { OU: 'ci' }, subjectaltname: 'DNS:runner1.example.com, DNS:alias.example.com' }, { user: 'runner1.example.com', groups: ['ci'], via: 'mtls' }],
    ['the URI SAN (SPIFFE)', { user: 'san-uri', groups: 'none' }, { subjectaltname: 'URI:spiffe://td/ns/ci' }, { user: 'spiffe://td/ns/ci', groups: [], via: 'mtls' }],
    ['groups from the map', { user: 'cn', groups: 'map', groupMap: { alice: ['dev'], bob: ['ops'] } }, { subject: { CN: 'alice', OU: 'admins' } }, { user: 'alice', groups: ['dev'], via: 'mtls' }],
    ['no groups for a user missing from the map', { user: 'cn', groups: 'map', groupMap: { bob: ['ops'] } }, { subject: { CN: 'alice' } }, { user: 'alice', groups: [], via: 'mtls' }],
  ] as [string, MtlsConfig, object, Identity][])('reads %s', (_name, cfg, cert, identity) => {
    expect(identityFromCertificate(cert, cfg)).toEqual({ ok: true, identity });
  });

  it.each([
    ['no CN', CN_OU, { subject: { O: 'x' } }, /0 subject common names/],
    ['two CNs', CN_OU, { subject: { CN: ['alice', 'root'] } }, /2 subject common names/],
    ['an empty CN', CN_OU, { subject: { CN: '' } }, /no usable user/],
    ['a CN with a control character', CN_OU, { subject: { CN: 'alice\nroot' } }, /no usable user/],
    ['no email SAN', { user: 'san-email', groups: 'none' }, { subjectaltname: 'DNS:h' }, /no email subjectAltName/],
    ['an unreadable SAN', { user: 'san-dns', groups: 'none' }, { subjectaltname: 'DNS:"x' }, /cannot be read/],
    ['an OU with a control character', CN_OU, { subject: { CN: 'alice', OU: 'dev\u0000' } }, /unusable organizational unit/],
  ] as [string, MtlsConfig, object, RegExp][])('refuses a certificate with %s', (_name, cfg, cert, message) => {
    const r = identityFromCertificate(cert, cfg);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.message).toMatch(message);
  });
});

describe('the authenticate stage with client certificates and tokens', () => {
  const alice: Identity = { user: 'alice', groups: ['dev'], via: 'mtls' };
  const bob: Identity = { user: 'bob', groups: ['ops'], via: 'jwt' };
  const verifier: TokenVerifier = {
    verify: (t): TokenResult => (t === 'good' ? { ok: true, identity: bob } : { ok: false, reason: 'signature', message: 'token signature does not verify' }),
  };
  const CERT: PeerResult = { kind: 'ok', identity: alice };
  const NONE: PeerResult = { kind: 'none' };
  const UNTRUSTED: PeerResult = { kind: 'refused', message: 'the client certificate is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE)' };
  const ctxWith = (authorization?: string) => ({ headers: authorization ? { authorization } : {} }) as unknown as RequestContext;

  function run(deps: Partial<AuthenticateDeps>, peer: PeerResult, authorization?: string) {
    const failures: string[] = [];
    const stage = createAuthenticate({ verifier, anonymous: false, peer: () => peer, onFailure: (r) => failures.push(r), ...deps });
    const ctx = ctxWith(authorization);
    const r = stage(ctx);
    expect(r).not.toBeInstanceOf(Promise);
    expect(ctx.headers.authorization).toBeUndefined();
    return { rejection: r as Exclude<typeof r, Promise<unknown>>, identity: ctx.identity, failures };
  }

  it.each([
    ['a certificate alone', {}, CERT, undefined, alice],
    ['a token alone', {}, NONE, 'Bearer good', bob],
    ['both, certificate wins (default precedence)', {}, CERT, 'Bearer good', alice],
    ['both, token wins (precedence: jwt)', { precedence: 'jwt' }, CERT, 'Bearer good', bob],
  ] as [string, Partial<AuthenticateDeps>, PeerResult, string | undefined, Identity][])('authenticates %s', (_name, deps, peer, header, identity) => {
    const r = run(deps, peer, header);
    expect(r.rejection).toBeUndefined();
    expect(r.identity).toEqual(identity);
  });

  it.each([
    ['a bad token next to a good certificate', {}, CERT, 'Bearer bad', 'signature', /invalid token/],
    ['an untrusted certificate next to a good token', { precedence: 'jwt' }, UNTRUSTED, 'Bearer good', 'certificate', /not trusted/],
    ['an untrusted certificate alone', {}, UNTRUSTED, undefined, 'certificate', /not trusted/],
    ['nothing at all', {}, NONE, undefined, 'missing', /present a client certificate or send Authorization: Bearer/],
    ['a token when only certificates are accepted', { verifier: undefined }, NONE, 'Bearer good', 'malformed', /bearer tokens are not accepted/],
  ] as [string, Partial<AuthenticateDeps>, PeerResult, string | undefined, string, RegExp][])('refuses %s', (_name, deps, peer, header, reason, message) => {
    const r = run(deps, peer, header);
    expect(r.rejection).toMatchObject({ status: 401, code: 'unauthenticated', message: expect.stringMatching(message) });
    expect(r.identity).toBeUndefined();
    expect(r.failures).toEqual([reason]);
  });

  it('names the client certificate in the 401 of a certificate-only gateway', () => {
    const r = run({ verifier: undefined }, NONE);
    expect(r.rejection?.message).toMatch(/present a client certificate signed by the gateway's client CA/);
  });
});

describe('client certificates over a real TLS handshake', () => {
  let pki: TestPki;
  beforeAll(async () => {
    pki = await makeTestPki();
  });
  afterAll(async () => {
    await rm(pki.dir, { recursive: true, force: true });
  });

  /** An HTTPS server with the gateway's TLS options that answers with the connection's peer identity. */
  async function serve(clientAuth: 'require' | 'optional') {
    const peerOf = createPeerIdentities(CN_OU);
    const server = https.createServer(tlsServerOptions({ cert: pki.serverCert, key: pki.serverKey, clientCA: pki.caFile, clientAuth, minVersion: 'TLSv1.2' }), (req, res) => {
      res.end(JSON.stringify(peerOf(req.socket as TLSSocket)));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { server, port: (server.address() as AddressInfo).port };
  }

  function get(port: number, client?: { cert: string; key: string }, extra: tls.ConnectionOptions = {}): Promise<PeerResult | Error> {
    return new Promise((resolve) => {
      const req = https.get(
        { host: '127.0.0.1', port, path: '/', ca: readFileSync(pki.caFile), agent: false, ...(client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}), ...extra },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve(JSON.parse(body) as PeerResult));
        },
      );
      req.on('error', resolve);
    });
  }

  it('reads the identity of a certificate the client CA signed', async () => {
    const { server, port } = await serve('require');
    try {
      const alice = await pki.client('alice', { ou: ['dev', 'ops'] });
      expect(await get(port, alice)).toEqual({ kind: 'ok', identity: { user: 'alice', groups: ['dev', 'ops'], via: 'mtls' } });
    } finally {
      server.close();
    }
  });

  it.each([
    ['no certificate', undefined],
    ['a certificate from another CA', 'rogue'],
  ])('clientAuth require: refuses the handshake with %s', async (_name, which) => {
    const { server, port } = await serve('require');
    try {
      const client = which ? await pki.client('mallory', { rogue: true }) : undefined;
      const r = await get(port, client);
      expect(r).toBeInstanceOf(Error);
    } finally {
      server.close();
    }
  });

  it('clientAuth optional: lets a client without certificate through as "none", and marks a foreign certificate refused', async () => {
    const { server, port } = await serve('optional');
    try {
      expect(await get(port)).toEqual({ kind: 'none' });
      const mallory = await pki.client('mallory', { rogue: true });
      expect(await get(port, mallory)).toMatchObject({ kind: 'refused', message: expect.stringMatching(/not trusted/) });
    } finally {
      server.close();
    }
  });

  it('refuses TLS 1.1', async () => {
    const { server, port } = await serve('optional');
    try {
      const r = await get(port, undefined, { maxVersion: 'TLSv1.1', minVersion: 'TLSv1' });
      expect(r).toBeInstanceOf(Error);
    } finally {
      server.close();
    }
  });
});
