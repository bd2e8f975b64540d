import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJwks, jwksFileSource, jwksUrlSource, keyFits, parseJwks, MAX_JWKS_BYTES, type JwksSource } from '../../src/auth/jwks.js';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const ed = generateKeyPairSync('ed25519');
const jwk = (k: KeyObject, kid?: string, extra: object = {}) => ({ ...k.export({ format: 'jwk' }), ...(kid ? { kid } : {}), ...extra });
const doc = (...keys: object[]) => JSON.stringify({ keys });

describe('parseJwks', () => {
  it.each([
    ['an oct (symmetric) key', { kty: 'oct', kid: 's', k: 'c2VjcmV0' }, /"s": symmetric \(oct\) keys are never taken/],
    ['a private key', jwk(rsa.privateKey, 'p'), /"p": holds private key material/],
    ['an encryption key', jwk(rsa.publicKey, 'e', { use: 'enc' }), /"e": use "enc" is not "sig"/],
    ['a key without verify in key_ops', jwk(rsa.publicKey, 'o', { key_ops: ['encrypt'] }), /"o": key_ops does not include "verify"/],
    ['a key for an encryption algorithm', jwk(rsa.publicKey, 'x', { alg: 'RSA-OAEP' }), /"x": alg "RSA-OAEP" is not a signature algorithm/],
    ['a key that does not import', { kty: 'RSA', kid: 'bad', n: 'AQAB' }, /"bad": cannot import/],
    ['a non-string kid', { ...jwk(rsa.publicKey), kid: 7 }, /kid is not a string/],
  ])('skips %s and says why', (_name, key, problem) => {
    const r = parseJwks(doc(key, jwk(p256.publicKey, 'good')));
    expect(r.keys.map((k) => k.kid)).toEqual(['good']);
    expect(r.problems.join('\n')).toMatch(problem);
  });

  it('uses neither of two keys that share a kid', () => {
    const r = parseJwks(doc(jwk(rsa.publicKey, 'k'), jwk(p256.publicKey, 'k'), jwk(ed.publicKey, 'other')));
    expect(r.keys.map((k) => k.kid)).toEqual(['other']);
    expect(r.problems).toEqual(['key "k": 2 keys share this kid; none of them is used']);
  });

  it.each([
    ['not JSON', '{keys:', /not JSON/],
    ['no keys array', '{"keys":{}}', /expected an object with a "keys" array/],
    ['an array', '[]', /expected an object with a "keys" array/],
    ['too many keys', doc(...Array.from({ length: 101 }, (_, i) => jwk(p256.publicKey, String(i)))), /101 keys; at most 100/],
  ])('refuses a document that is %s', (_name, text, message) => {
    expect(() => parseJwks(text)).toThrow(message);
  });
});

describe('keyFits: the key family must fit the token algorithm', () => {
  const entry = (k: KeyObject, extra: object = {}) => parseJwks(doc(jwk(k, 'k', extra))).keys[0]!;
  it.each([
    ['RSA key, RS256', entry(rsa.publicKey), 'RS256', true],
    ['RSA key, PS384', entry(rsa.publicKey), 'PS384', true],
    ['RSA key, ES256', entry(rsa.publicKey), 'ES256', false],
    ['RSA key, HS256', entry(rsa.publicKey), 'HS256', false],
    ['P-256 key, ES256', entry(p256.publicKey), 'ES256', true],
    ['P-256 key, ES384', entry(p256.publicKey), 'ES384', false],
    ['P-384 key, ES384', entry(p384.publicKey), 'ES384', true],
    ['Ed25519 key, EdDSA', entry(ed.publicKey), 'EdDSA', true],
    ['Ed25519 key, ES256', entry(ed.publicKey), 'ES256', false],
    ['RSA key pinned to RS256, PS256', entry(rsa.publicKey, { alg: 'RS256' }), 'PS256', false],
    ['RSA key pinned to RS256, RS256', entry(rsa.publicKey, { alg: 'RS256' }), 'RS256', true],
  ] as const)('%s', (_name, e, alg, fits) => {
    expect(keyFits(e, alg)).toBe(fits);
  });
});

describe('createJwks: caching, kid selection, rate-limited refetch', () => {
  function fake(initial: string) {
    const state = { text: initial, fetches: 0, t: 1_000_000, fail: false, errors: [] as string[] };
    const source: JwksSource = {
      description: 'fake',
      fetch: async () => {
        state.fetches += 1;
        if (state.fail) throw new Error('connection refused');
        return state.text;
      },
    };
    const jwks = createJwks(source, { maxAgeMs: 600_000, refetchMs: 30_000, now: () => state.t, onError: (m) => state.errors.push(m) });
    return { state, jwks };
  }

  it('answers a known kid synchronously, without fetching', async () => {
    const { state, jwks } = fake(doc(jwk(rsa.publicKey, 'a')));
    expect(await jwks.refresh()).toBe(true);
    const r = jwks.keyFor('RS256', 'a');
    expect(r).toMatchObject({ ok: true });
    expect(state.fetches).toBe(1);
  });

  it('fetches once for an unknown kid, then not again within the refetch interval', async () => {
    const { state, jwks } = fake(doc(jwk(rsa.publicKey, 'a')));
    await jwks.refresh();
    state.t += 60_000;
    expect(await jwks.keyFor('RS256', 'nope-1')).toMatchObject({ ok: false, reason: 'unknown_kid' });
    expect(state.fetches).toBe(2);
    for (const kid of ['nope-2', 'nope-3', 'nope-4']) {
      state.t += 1000;
      expect(await jwks.keyFor('RS256', kid)).toMatchObject({ ok: false, message: expect.stringMatching(/fetched again in \d+s at the earliest/) });
    }
    expect(state.fetches).toBe(2);
    state.t += 30_000;
    await jwks.keyFor('RS256', 'nope-5');
    expect(state.fetches).toBe(3);
  });

  it('shares one fetch between concurrent lookups of an unknown kid', async () => {
    const { state, jwks } = fake(doc(jwk(rsa.publicKey, 'a')));
    await jwks.refresh();
    state.t += 60_000;
    state.text = doc(jwk(rsa.publicKey, 'a'), jwk(p256.publicKey, 'b'));
    const results = await Promise.all([jwks.keyFor('ES256', 'b'), jwks.keyFor('ES256', 'b'), jwks.keyFor('ES256', 'b')]);
    expect(results.every((r) => r.ok)).toBe(true);
    expect(state.fetches).toBe(2);
  });

  it('fetches a stale key set in the background and keeps answering from the old one meanwhile', async () => {
    const { state, jwks } = fake(doc(jwk(rsa.publicKey, 'a')));
    await jwks.refresh();
    const v1 = jwks.version;
    state.text = doc(jwk(p256.publicKey, 'b'));
    state.t += 600_001;
    expect(jwks.keyFor('RS256', 'a')).toMatchObject({ ok: true });
    await new Promise((r) => setImmediate(r));
    expect(state.fetches).toBe(2);
    expect(jwks.version).toBe(v1 + 1);
    expect(await jwks.keyFor('RS256', 'a')).toMatchObject({ ok: false });
  });

  it('keeps the keys it has when a fetch fails or brings garbage', async () => {
    const { state, jwks } = fake(doc(jwk(rsa.publicKey, 'a')));
    await jwks.refresh();
    state.fail = true;
    expect(await jwks.refresh()).toBe(false);
    state.fail = false;
    state.text = '<html>maintenance</html>';
    expect(await jwks.refresh()).toBe(false);
    state.text = doc({ kty: 'oct', k: 'c2VjcmV0' });
    expect(await jwks.refresh()).toBe(false);
    expect(jwks.keyFor('RS256', 'a')).toMatchObject({ ok: true });
    expect(state.errors.join('\n')).toMatch(/connection refused; keeping the keys loaded before/);
    expect(state.errors.join('\n')).toMatch(/no usable key in the key set/);
  });

  it('refuses every token while no key set could ever be loaded', async () => {
    const { state, jwks } = fake('');
    state.fail = true;
    expect(await jwks.refresh()).toBe(false);
    expect(jwks.keyFor('RS256', 'a')).toMatchObject({ ok: false, reason: 'unavailable' });
  });

  it('picks the only fitting key for a token without kid, and refuses to guess among several', async () => {
    const { jwks } = fake(doc(jwk(rsa.publicKey, 'r1'), jwk(p256.publicKey, 'e1'), jwk(p256.publicKey, 'e2')));
    await jwks.refresh();
    expect(jwks.keyFor('RS256', undefined)).toMatchObject({ ok: true });
    expect(jwks.keyFor('ES256', undefined)).toMatchObject({ ok: false, reason: 'ambiguous' });
  });

  it('does not count an unchanged key set as a new version (cached tokens stay cached)', async () => {
    const { jwks } = fake(doc(jwk(rsa.publicKey, 'a')));
    await jwks.refresh();
    const v = jwks.version;
    await jwks.refresh();
    expect(jwks.version).toBe(v);
  });
});

describe('JWKS sources', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dw-jwks-'));

  it('reads a file again on every refresh (a replaced file is picked up)', async () => {
    const file = path.join(dir, 'jwks.json');
    writeFileSync(file, doc(jwk(rsa.publicKey, 'a')));
    const src = jwksFileSource(file);
    expect(parseJwks(await src.fetch()).keys.map((k) => k.kid)).toEqual(['a']);
    writeFileSync(file, doc(jwk(p256.publicKey, 'b')));
    expect(parseJwks(await src.fetch()).keys.map((k) => k.kid)).toEqual(['b']);
  });

  describe('over HTTP and HTTPS on loopback', () => {
    let httpServer: http.Server;
    let httpsServer: https.Server;
    let caFile = '';
    const hits: string[] = [];
    const handler: http.RequestListener = (req, res) => {
      hits.push(req.url ?? '');
      if (req.url === '/jwks') res.end(doc(jwk(ed.publicKey, 'ed')));
      else if (req.url === '/moved') res.writeHead(302, { location: 'http://127.0.0.1:1/elsewhere' }).end();
      else if (req.url === '/huge') res.end('x'.repeat(MAX_JWKS_BYTES + 1));
      else if (req.url === '/slow') setTimeout(() => res.end(doc(jwk(ed.publicKey, 'ed'))), 3000);
      else res.writeHead(500).end();
    };
    const url = (s: http.Server, scheme: string, p: string) => `${scheme}://127.0.0.1:${(s.address() as AddressInfo).port}${p}`;

    beforeAll(async () => {
      // A CA and a server certificate for 127.0.0.1, as a private identity provider would have.
      const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
      run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca-key.pem', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=idp test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
      run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'idp-key.pem', '-out', 'idp.csr', '-subj', '/CN=idp']);
      writeFileSync(path.join(dir, 'idp.ext'), 'subjectAltName=IP:127.0.0.1\n');
      run(['x509', '-req', '-in', 'idp.csr', '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-set_serial', '7', '-days', '1', '-out', 'idp.pem', '-extfile', 'idp.ext']);
      caFile = path.join(dir, 'ca.pem');
      httpServer = http.createServer(handler);
      httpsServer = https.createServer({ cert: readFileSync(path.join(dir, 'idp.pem')), key: readFileSync(path.join(dir, 'idp-key.pem')) }, handler);
      await Promise.all([httpServer, httpsServer].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
    });
    afterAll(() => {
      httpServer.closeAllConnections();
      httpsServer.closeAllConnections();
      httpServer.close();
      httpsServer.close();
    });

    it('fetches a key set over HTTP', async () => {
      expect(parseJwks(await jwksUrlSource(url(httpServer, 'http', '/jwks')).fetch()).keys[0]?.kid).toBe('ed');
    });

    it('fetches a key set over HTTPS from a server whose certificate jwksCaFile signed', async () => {
      expect(parseJwks(await jwksUrlSource(url(httpsServer, 'https', '/jwks'), { caFile }).fetch()).keys[0]?.kid).toBe('ed');
    });

    it('refuses an HTTPS server it cannot verify (no jwksCaFile)', async () => {
      await expect(jwksUrlSource(url(httpsServer, 'https', '/jwks')).fetch()).rejects.toThrow(/certificate/);
    });

    it.each([
      ['a redirect, which it does not follow', '/moved', /HTTP 302 \(redirect to http:\/\/127\.0\.0\.1:1\/elsewhere not followed/],
      ['an error status', '/missing', /HTTP 500/],
      ['an answer over the size limit', '/huge', /larger than/],
    ])('refuses %s', async (_name, p, message) => {
      await expect(jwksUrlSource(url(httpServer, 'http', p)).fetch()).rejects.toThrow(message);
    });

    it('gives up on a server that does not answer in time', async () => {
      await expect(jwksUrlSource(url(httpServer, 'http', '/slow'), { timeoutMs: 200 }).fetch()).rejects.toThrow(/no answer within 200 ms/);
    });
  });
});
