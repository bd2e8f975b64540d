/**
 * Bearer-token identities. Keys are loaded once at start-up into KeyObjects (jsonwebtoken with a
 * string secret re-derives the key on every call: ~480 µs vs ~26 µs, pitfalls.md), and verified
 * tokens are cached by their exact string until they expire, so a docker CLI that sends the same
 * token on every request pays for the signature once.
 */
import { createPublicKey, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import type { Identity } from '../types.js';
import type { JwtAlgorithm, JwtConfig } from '../config/schema.js';

export type AuthFailure =
  | 'missing' | 'malformed' | 'algorithm' | 'signature' | 'expired' | 'not_yet_valid'
  | 'issuer' | 'audience' | 'claims';

export type TokenResult =
  | { ok: true; identity: Identity }
  | { ok: false; reason: AuthFailure; message: string };

export interface TokenVerifier {
  verify(token: string, nowMs?: number): TokenResult;
}

const MIN_SECRET_BYTES = 32;
const CACHE_LIMIT = 10_000;

/** Reads (or, when the config asks, creates) the key material. Throws with a message saying what to fix. */
export function loadJwtKeys(cfg: JwtConfig): { secret?: KeyObject; publicKey?: KeyObject } {
  const keys: { secret?: KeyObject; publicKey?: KeyObject } = {};
  if (cfg.secretFile) {
    if (!existsSync(cfg.secretFile) && cfg.createSecretIfMissing) {
      mkdirSync(path.dirname(cfg.secretFile), { recursive: true });
      writeFileSync(cfg.secretFile, randomBytes(48).toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
    }
    keys.secret = createSecretKey(readSecret(cfg.secretFile));
  }
  if (cfg.publicKeyFile) {
    let pem: string;
    try {
      pem = readFileSync(cfg.publicKeyFile, 'utf8');
    } catch (err) {
      throw new Error(`auth.jwt.publicKeyFile: cannot read ${cfg.publicKeyFile}: ${(err as Error).message}`);
    }
    try {
      keys.publicKey = createPublicKey(pem);
    } catch (err) {
      throw new Error(`auth.jwt.publicKeyFile: ${cfg.publicKeyFile} is not a PEM public key: ${(err as Error).message}`);
    }
  }
  return keys;
}

/** The secret is the file's content without trailing whitespace; short secrets are refused. */
export function readSecret(file: string): Buffer {
  let raw: Buffer;
  try {
    raw = readFileSync(file);
  } catch (err) {
    throw new Error(`auth.jwt.secretFile: cannot read ${file}: ${(err as Error).message}`);
  }
  const secret = Buffer.from(raw.toString('utf8').replace(/\s+$/, ''), 'utf8');
  if (secret.length < MIN_SECRET_BYTES) {
    throw new Error(`auth.jwt.secretFile: ${file} holds ${secret.length} bytes; an HS256 secret needs at least ${MIN_SECRET_BYTES}`);
  }
  return secret;
}

export function createTokenVerifier(cfg: JwtConfig, keys: { secret?: KeyObject; publicKey?: KeyObject }): TokenVerifier {
  const allowed = new Set<string>(cfg.algorithms);
  const cache = new Map<string, { identity: Identity; expMs: number; nbfMs: number }>();
  const toleranceMs = cfg.clockToleranceSeconds * 1000;

  function keyFor(alg: JwtAlgorithm): KeyObject | undefined {
    // The key is chosen by the algorithm family, never by what the token asks for: an HS256
    // token can only ever be checked against the secret, so a public key can't be abused as an
    // HMAC secret (the classic RS/HS confusion).
    return alg.startsWith('HS') ? keys.secret : keys.publicKey;
  }

  function verifyUncached(token: string, nowMs: number): TokenResult {
    const decoded = jwt.decode(token, { complete: true });
    if (!decoded || typeof decoded.payload !== 'object') return fail('malformed', 'the bearer token is not a JWT');
    const alg = decoded.header.alg;
    if (!allowed.has(alg)) return fail('algorithm', `token algorithm ${JSON.stringify(alg)} is not allowed`);
    const key = keyFor(alg as JwtAlgorithm);
    if (!key) return fail('algorithm', `no key configured for algorithm ${alg}`);
    let payload: jwt.JwtPayload;
    try {
      payload = jwt.verify(token, key, {
        algorithms: [alg as jwt.Algorithm],
        issuer: cfg.issuer,
        audience: cfg.audience,
        clockTimestamp: Math.floor(nowMs / 1000),
        clockTolerance: cfg.clockToleranceSeconds,
      }) as jwt.JwtPayload;
    } catch (err) {
      return classifyError(err);
    }
    // A token without an expiry would be valid forever once leaked: refuse it.
    if (typeof payload.exp !== 'number') return fail('claims', 'token has no exp claim');
    const user = claim(payload, cfg.userClaim);
    if (typeof user !== 'string' || user === '') return fail('claims', `token has no string claim ${cfg.userClaim}`);
    const rawGroups = claim(payload, cfg.groupsClaim);
    let groups: string[];
    if (rawGroups === undefined) groups = [];
    else if (typeof rawGroups === 'string') groups = [rawGroups];
    else if (Array.isArray(rawGroups) && rawGroups.every((g) => typeof g === 'string')) groups = rawGroups as string[];
    else return fail('claims', `token claim ${cfg.groupsClaim} must be a string or a list of strings`);
    const identity: Identity = Object.freeze({ user, groups: Object.freeze([...groups]), via: 'jwt' as const });
    const expMs = payload.exp * 1000 + toleranceMs;
    const nbfMs = typeof payload.nbf === 'number' ? payload.nbf * 1000 - toleranceMs : -Infinity;
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(token, { identity, expMs, nbfMs });
    return { ok: true, identity };
  }

  return {
    verify(token, nowMs = Date.now()) {
      const hit = cache.get(token);
      if (hit) {
        if (nowMs < hit.expMs && nowMs >= hit.nbfMs) return { ok: true, identity: hit.identity };
        cache.delete(token);
      }
      return verifyUncached(token, nowMs);
    },
  };
}

/** `groups` or a dotted path such as `realm_access.roles`. */
function claim(payload: Record<string, unknown>, name: string): unknown {
  if (name in payload) return payload[name];
  let cur: unknown = payload;
  for (const part of name.split('.')) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

function fail(reason: AuthFailure, message: string): TokenResult {
  return { ok: false, reason, message };
}

function classifyError(err: unknown): TokenResult {
  if (err instanceof jwt.TokenExpiredError) return fail('expired', 'token expired');
  if (err instanceof jwt.NotBeforeError) return fail('not_yet_valid', 'token not valid yet (nbf)');
  const msg = (err as Error).message ?? String(err);
  if (/issuer/.test(msg)) return fail('issuer', 'token issuer is not accepted');
  if (/audience/.test(msg)) return fail('audience', 'token audience is not accepted');
  if (/signature/.test(msg)) return fail('signature', 'token signature does not verify');
  return fail('malformed', `token rejected: ${msg}`);
}

/** `dockward token`: an HS256 token for tests and demos. */
export function mintToken(secret: Buffer, claims: { sub: string; groups: string[] }, ttlSeconds: number, extra: Record<string, unknown> = {}): string {
  return jwt.sign({ ...extra, groups: claims.groups }, createSecretKey(secret), { algorithm: 'HS256', subject: claims.sub, expiresIn: ttlSeconds });
}
