import { createSecretKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import jwt from 'jsonwebtoken';
import { describe, expect, it } from 'vitest';
import { createTokenVerifier, readSecret } from '../../src/auth/jwt.js';
import { createJwks, type JwksSource } from '../../src/auth/jwks.js';
import type { JwtAlgorithm, JwtConfig } from '../../src/config/schema.js';

const secret = Buffer.from('s'.repeat(48));
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rsaPublicPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string;

const base: JwtConfig = {
  algorithms: ['HS256', 'RS256', 'ES256'],
  createSecretIfMissing: false,
  userClaim: 'sub',
  groupsClaim: 'groups',
  clockToleranceSeconds: 0,
  jwksCacheSeconds: 600,
  jwksRefetchSeconds: 30,
  issuer: 'https://idp.example.com',
  audience: 'dockward',
};
const NOW = 1_800_000_000_000;
const nowS = NOW / 1000;
const claims = { sub: 'alice', groups: ['dev'], iss: base.issuer, aud: base.audience, iat: nowS, exp: nowS + 600 };

const verifier = (cfg: Partial<JwtConfig> = {}) =>
  createTokenVerifier({ ...base, ...cfg }, { secret: createSecretKey(secret), publicKey: rsa.publicKey });
const hs = (c: object, key: Buffer | string = secret) => jwt.sign(c, key, { algorithm: 'HS256' });
const unsigned = (c: object) => `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify(c)).toString('base64url')}.`;

describe('bearer token verification', () => {
  it('accepts a valid HS256 token and reads user and groups from the claims', async () => {
    expect(await verifier().verify(hs(claims), NOW)).toEqual({ ok: true, identity: { user: 'alice', groups: ['dev'], via: 'jwt' } });
  });

  it('accepts RS256 tokens with the public key', async () => {
    const t = jwt.sign(claims, rsa.privateKey, { algorithm: 'RS256' });
    expect(await verifier().verify(t, NOW)).toMatchObject({ ok: true });
  });

  it.each([
    ['ES256', generateKeyPairSync('ec', { namedCurve: 'P-256' })],
    ['ES384', generateKeyPairSync('ec', { namedCurve: 'P-384' })],
    ['PS256', generateKeyPairSync('rsa', { modulusLength: 2048 })],
    ['EdDSA', generateKeyPairSync('ed25519')],
  ] as const)('accepts %s tokens with a matching public key', async (alg, pair) => {
    const v = createTokenVerifier({ ...base, algorithms: [alg] }, { publicKey: pair.publicKey });
    expect(await v.verify(await joseSign(claims, alg, pair.privateKey), NOW)).toMatchObject({ ok: true, identity: { user: 'alice' } });
  });

  it('refuses a token whose algorithm does not fit the key (an RSA key for ES256)', async () => {
    const v = createTokenVerifier({ ...base, algorithms: ['ES256'] }, { publicKey: rsa.publicKey });
    expect(await v.verify(await joseSign(claims, 'ES256', ec.privateKey), NOW)).toMatchObject({ ok: false, reason: 'key' });
  });

  it.each([
    ['expired', hs({ ...claims, exp: nowS - 1 }), 'expired'],
    ['not yet valid', hs({ ...claims, nbf: nowS + 60 }), 'not_yet_valid'],
    ['wrong secret', hs(claims, Buffer.from('x'.repeat(48))), 'signature'],
    ['wrong issuer', hs({ ...claims, iss: 'https://evil.example.com' }), 'issuer'],
    ['wrong audience', hs({ ...claims, aud: 'other' }), 'audience'],
    ['alg none', unsigned(claims), 'algorithm'],
    ['not a JWT', 'abc.def', 'malformed'],
    ['no exp claim', hs({ sub: 'alice', iss: base.issuer, aud: base.audience }), 'claims'],
    ['no user claim', hs({ ...claims, sub: undefined }), 'claims'],
    ['groups not strings', hs({ ...claims, groups: [1, 2] }), 'claims'],
    // HS/RS confusion: an attacker signs HS256 with the (public) RSA key as the HMAC secret.
    ['HS256 signed with the public key', hs(claims, rsaPublicPem), 'signature'],
    ['tampered payload', (() => { const [h, , s] = hs(claims).split('.'); return `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: 'root' })).toString('base64url')}.${s}`; })(), 'signature'],
  ])('refuses a token that is %s', async (_name, token, reason) => {
    expect(await verifier().verify(token, NOW)).toMatchObject({ ok: false, reason });
  });

  it('refuses an algorithm the config does not allow even when the signature is good', async () => {
    const t = jwt.sign(claims, rsa.privateKey, { algorithm: 'RS256' });
    expect(await verifier({ algorithms: ['HS256'] }).verify(t, NOW)).toMatchObject({ ok: false, reason: 'algorithm' });
  });

  it('reads a single group string and a dotted groups claim', async () => {
    expect(await verifier().verify(hs({ ...claims, groups: 'ops' }), NOW)).toMatchObject({ identity: { groups: ['ops'] } });
    const v = verifier({ groupsClaim: 'realm_access.roles', userClaim: 'preferred_username' });
    expect(await v.verify(hs({ ...claims, preferred_username: 'bob', realm_access: { roles: ['qa'] } }), NOW)).toMatchObject({ identity: { user: 'bob', groups: ['qa'] } });
  });

  it('answers a token it verified before synchronously (the hot path), and only that one', async () => {
    const v = verifier();
    const t = hs(claims);
    const first = v.verify(t, NOW);
    expect(first).toBeInstanceOf(Promise);
    expect(await first).toMatchObject({ ok: true });
    expect(v.verify(t, NOW + 1000)).toEqual({ ok: true, identity: { user: 'alice', groups: ['dev'], via: 'jwt' } });
    expect(v.verify(hs({ ...claims, sub: 'bob' }), NOW)).toBeInstanceOf(Promise);
  });

  it('does not serve a cached token past its expiry', async () => {
    const v = verifier();
    const t = hs({ ...claims, exp: nowS + 10 });
    expect(await v.verify(t, NOW)).toMatchObject({ ok: true });
    expect(await v.verify(t, NOW + 5_000)).toMatchObject({ ok: true });
    expect(await v.verify(t, NOW + 11_000)).toMatchObject({ ok: false, reason: 'expired' });
  });

  it('honours the configured clock tolerance', async () => {
    const t = hs({ ...claims, exp: nowS - 5 });
    expect(await verifier().verify(t, NOW)).toMatchObject({ ok: false });
    expect(await verifier({ clockToleranceSeconds: 30 }).verify(t, NOW)).toMatchObject({ ok: true });
  });
});

describe('bearer tokens checked against a JWKS', () => {
  const keyA = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyB = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keyC = generateKeyPairSync('ed25519');
  const jwk = (k: KeyObject, kid: string, extra: object = {}) => ({ ...k.export({ format: 'jwk' }), kid, ...extra });

  /** A key set whose document the test changes, with a clock the test moves. */
  function setup(doc: { keys: object[] }, cfg: Partial<JwtConfig> = {}) {
    const state = { doc, fetches: 0, t: NOW };
    const source: JwksSource = {
      description: 'test',
      fetch: async () => {
        state.fetches += 1;
        return JSON.stringify(state.doc);
      },
    };
    const jwks = createJwks(source, { maxAgeMs: 600_000, refetchMs: 30_000, now: () => state.t });
    const v = createTokenVerifier({ ...base, algorithms: ['HS256', 'RS256', 'ES256', 'EdDSA'], ...cfg }, { secret: createSecretKey(secret), jwks });
    return { state, jwks, verify: (t: string) => v.verify(t, state.t) };
  }

  it.each([
    ['RS256', 'a', keyA.privateKey],
    ['ES256', 'b', keyB.privateKey],
    ['EdDSA', 'c', keyC.privateKey],
  ] as const)('selects the key by kid: %s', async (alg, kid, priv) => {
    const s = setup({ keys: [jwk(keyA.publicKey, 'a'), jwk(keyB.publicKey, 'b'), jwk(keyC.publicKey, 'c')] });
    await s.jwks.refresh();
    expect(await s.verify(await joseSign(claims, alg, priv, kid))).toMatchObject({ ok: true, identity: { user: 'alice' } });
  });

  it('refuses a token whose kid names a key of another type', async () => {
    const s = setup({ keys: [jwk(keyA.publicKey, 'a'), jwk(keyB.publicKey, 'b')] });
    await s.jwks.refresh();
    expect(await s.verify(await joseSign(claims, 'ES256', keyB.privateKey, 'a'))).toMatchObject({ ok: false, reason: 'key' });
  });

  it('never checks an HS256 token against a key set, even one that publishes the secret as an oct key', async () => {
    const other = Buffer.from('o'.repeat(48));
    const s = setup({ keys: [{ kty: 'oct', kid: 'h', k: other.toString('base64url') }, jwk(keyA.publicKey, 'a')] });
    await s.jwks.refresh();
    const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: 'h' }).sign(createSecretKey(other));
    expect(await s.verify(forged)).toMatchObject({ ok: false, reason: 'signature' });
  });

  it('fetches the key set again for an unknown kid: a rotated key works without a restart', async () => {
    const s = setup({ keys: [jwk(keyA.publicKey, 'a')] });
    await s.jwks.refresh();
    s.state.doc = { keys: [jwk(keyA.publicKey, 'a'), jwk(keyB.publicKey, 'b')] };
    s.state.t += 60_000;
    expect(await s.verify(await joseSign(claims, 'ES256', keyB.privateKey, 'b'))).toMatchObject({ ok: true });
    expect(s.state.fetches).toBe(2);
  });

  it('re-checks cached tokens when the key set changes: a removed key stops working at once', async () => {
    const s = setup({ keys: [jwk(keyA.publicKey, 'a'), jwk(keyB.publicKey, 'b')] });
    await s.jwks.refresh();
    const tokenA = await joseSign(claims, 'RS256', keyA.privateKey, 'a');
    expect(await s.verify(tokenA)).toMatchObject({ ok: true });
    expect(s.verify(tokenA)).not.toBeInstanceOf(Promise);
    s.state.doc = { keys: [jwk(keyB.publicKey, 'b')] };
    await s.jwks.refresh();
    expect(await s.verify(tokenA)).toMatchObject({ ok: false, reason: 'key' });
  });

  it('keeps HS256 tokens cached when the key set changes (they never depended on it)', async () => {
    const s = setup({ keys: [jwk(keyA.publicKey, 'a')] });
    await s.jwks.refresh();
    const t = hs(claims);
    await s.verify(t);
    s.state.doc = { keys: [jwk(keyB.publicKey, 'b')] };
    await s.jwks.refresh();
    expect(s.verify(t)).toMatchObject({ ok: true });
  });
});

async function joseSign(c: object, alg: JwtAlgorithm, key: KeyObject, kid?: string): Promise<string> {
  return new SignJWT(c as Record<string, unknown>).setProtectedHeader(kid ? { alg, kid } : { alg }).sign(key);
}

describe('reading the HS256 secret file', () => {
  it.each([
    ['text with a trailing newline', Buffer.from('a'.repeat(40) + '\n'), Buffer.from('a'.repeat(40))],
    ['binary bytes, kept exactly (not decoded as text)', Buffer.from(Array.from({ length: 40 }, (_, i) => 0x80 + i)), Buffer.from(Array.from({ length: 40 }, (_, i) => 0x80 + i))],
  ])('%s', async (_n, content, expected) => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const f = path.join(mkdtempSync(path.join(os.tmpdir(), 'dw-secret-')), 's');
    writeFileSync(f, content);
    expect(readSecret(f).equals(expected)).toBe(true);
  });

  it('refuses a short binary secret by its real length', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const f = path.join(mkdtempSync(path.join(os.tmpdir(), 'dw-secret-')), 's');
    writeFileSync(f, Buffer.from(Array.from({ length: 8 }, (_, i) => 0xf0 + i)));
    expect(() => readSecret(f)).toThrow(/holds 8 bytes/);
  });
});
