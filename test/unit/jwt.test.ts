import { createSecretKey, generateKeyPairSync } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { describe, expect, it } from 'vitest';
import { createTokenVerifier } from '../../src/auth/jwt.js';
import type { JwtConfig } from '../../src/config/schema.js';

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
  it('accepts a valid HS256 token and reads user and groups from the claims', () => {
    expect(verifier().verify(hs(claims), NOW)).toEqual({ ok: true, identity: { user: 'alice', groups: ['dev'], via: 'jwt' } });
  });

  it('accepts RS256 tokens with the public key', () => {
    const t = jwt.sign(claims, rsa.privateKey, { algorithm: 'RS256' });
    expect(verifier().verify(t, NOW)).toMatchObject({ ok: true });
  });

  it('accepts ES256 tokens with an EC public key', () => {
    const v = createTokenVerifier({ ...base, algorithms: ['ES256'] }, { publicKey: ec.publicKey });
    expect(v.verify(jwt.sign(claims, ec.privateKey, { algorithm: 'ES256' }), NOW)).toMatchObject({ ok: true });
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
  ])('refuses a token that is %s', (_name, token, reason) => {
    expect(verifier().verify(token, NOW)).toMatchObject({ ok: false, reason });
  });

  it('refuses an algorithm the config does not allow even when the signature is good', () => {
    const t = jwt.sign(claims, rsa.privateKey, { algorithm: 'RS256' });
    expect(verifier({ algorithms: ['HS256'] }).verify(t, NOW)).toMatchObject({ ok: false, reason: 'algorithm' });
  });

  it('reads a single group string and a dotted groups claim', () => {
    expect(verifier().verify(hs({ ...claims, groups: 'ops' }), NOW)).toMatchObject({ identity: { groups: ['ops'] } });
    const v = verifier({ groupsClaim: 'realm_access.roles', userClaim: 'preferred_username' });
    expect(v.verify(hs({ ...claims, preferred_username: 'bob', realm_access: { roles: ['qa'] } }), NOW)).toMatchObject({ identity: { user: 'bob', groups: ['qa'] } });
  });

  it('does not serve a cached token past its expiry', () => {
    const v = verifier();
    const t = hs({ ...claims, exp: nowS + 10 });
    expect(v.verify(t, NOW)).toMatchObject({ ok: true });
    expect(v.verify(t, NOW + 5_000)).toMatchObject({ ok: true });
    expect(v.verify(t, NOW + 11_000)).toMatchObject({ ok: false, reason: 'expired' });
  });

  it('honours the configured clock tolerance', () => {
    const t = hs({ ...claims, exp: nowS - 5 });
    expect(verifier().verify(t, NOW)).toMatchObject({ ok: false });
    expect(verifier({ clockToleranceSeconds: 30 }).verify(t, NOW)).toMatchObject({ ok: true });
  });
});
