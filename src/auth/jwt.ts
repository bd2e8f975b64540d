/**
 * Bearer-token identities. Keys are loaded once at start-up into KeyObjects (a key re-derived on
 * every call costs ~480 µs vs ~26 µs, pitfalls.md), and verified tokens are cached by their exact
 * string until they expire, so a docker CLI that sends the same token on every request pays for
 * the signature once: a cached token is answered synchronously, only a cache miss returns a
 * Promise (signature checks run on `jose`, and a JWKS may have to be fetched).
 */
import { createPublicKey, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import jwt from 'jsonwebtoken';
import type { Identity } from '../types.js';
import type { JwtAlgorithm, JwtConfig } from '../config/schema.js';
import { createJwks, jwksFileSource, jwksUrlSource, type Jwks } from './jwks.js';

/** Bounded: the label values of dockward_auth_failures_total{reason}. */
export type AuthFailure =
  | 'missing' | 'malformed' | 'algorithm' | 'signature' | 'expired' | 'not_yet_valid'
  | 'issuer' | 'audience' | 'claims' | 'key' | 'certificate';

export type TokenResult =
  | { ok: true; identity: Identity }
  | { ok: false; reason: AuthFailure; message: string };

export interface TokenVerifier {
  /** Synchronous for a token verified before (until it expires or the key set changes); a Promise otherwise. */
  verify(token: string, nowMs?: number): TokenResult | Promise<TokenResult>;
}

export interface JwtKeys {
  /** HS* tokens, and only they, are checked against this. */
  secret?: KeyObject;
  /** RS*, PS*, ES*, EdDSA tokens without a `kid` (or every one of them when there is no key set). */
  publicKey?: KeyObject;
  /** RS*, PS*, ES*, EdDSA tokens, by `kid`. */
  jwks?: Jwks;
}

export interface JwksHooks {
  onError?: (message: string) => void;
  onUpdate?: (info: { keys: number; kids: string[]; version: number }) => void;
}

const MIN_SECRET_BYTES = 32;
const CACHE_LIMIT = 10_000;

/**
 * Reads (or, when the config asks, creates) the key material. Throws with a message saying what
 * to fix. A key set is created but not fetched: `await keys.jwks.refresh()` does that.
 */
export function loadJwtKeys(cfg: JwtConfig, hooks: JwksHooks = {}): JwtKeys {
  const keys: JwtKeys = {};
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
  if (cfg.jwksFile || cfg.jwksUrl) {
    let source;
    try {
      source = cfg.jwksFile ? jwksFileSource(cfg.jwksFile) : jwksUrlSource(cfg.jwksUrl!, { caFile: cfg.jwksCaFile });
    } catch (err) {
      throw new Error(`auth.jwt.jwksCaFile: cannot read ${cfg.jwksCaFile}: ${(err as Error).message}`);
    }
    keys.jwks = createJwks(source, {
      maxAgeMs: cfg.jwksCacheSeconds * 1000,
      refetchMs: cfg.jwksRefetchSeconds * 1000,
      onError: hooks.onError,
      onUpdate: hooks.onUpdate,
    });
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
  // Trailing whitespace (an editor's newline) is trimmed at the byte level; decoding the file as
  // text would replace every invalid byte of a binary secret with the same U+FFFD.
  let end = raw.length;
  while (end > 0 && (raw[end - 1] === 0x0a || raw[end - 1] === 0x0d || raw[end - 1] === 0x20 || raw[end - 1] === 0x09)) end--;
  const secret = raw.subarray(0, end);
  if (secret.length < MIN_SECRET_BYTES) {
    throw new Error(`auth.jwt.secretFile: ${file} holds ${secret.length} bytes; an HS256 secret needs at least ${MIN_SECRET_BYTES}`);
  }
  return secret;
}

interface CacheEntry {
  identity: Identity;
  expMs: number;
  nbfMs: number;
  /** The key set version the token was verified under; undefined when no key set was involved. */
  jwksVersion?: number;
}

export function createTokenVerifier(cfg: JwtConfig, keys: JwtKeys): TokenVerifier {
  const allowed = new Set<string>(cfg.algorithms);
  const cache = new Map<string, CacheEntry>();
  const toleranceMs = cfg.clockToleranceSeconds * 1000;

  type KeyChoice = { key: KeyObject; jwksVersion?: number } | TokenResult;

  function keyFor(alg: JwtAlgorithm, kid: string | undefined): KeyChoice | Promise<KeyChoice> {
    // The key is chosen by the algorithm family, never by what the token asks for: an HS256
    // token can only ever be checked against the secret, so a public key can't be abused as an
    // HMAC secret (the classic RS/HS confusion), and a key set never supplies a secret.
    if (alg.startsWith('HS')) return keys.secret ? { key: keys.secret } : fail('algorithm', `no key configured for algorithm ${alg}`);
    const jwks = keys.jwks;
    if (!jwks || (kid === undefined && keys.publicKey)) {
      return keys.publicKey ? { key: keys.publicKey } : fail('algorithm', `no key configured for algorithm ${alg}`);
    }
    const settle = (r: Awaited<ReturnType<Jwks['keyFor']>>): KeyChoice => (r.ok ? { key: r.key, jwksVersion: jwks.version } : fail('key', r.message));
    const r = jwks.keyFor(alg, kid);
    return r instanceof Promise ? r.then(settle) : settle(r);
  }

  async function verifyUncached(token: string, nowMs: number): Promise<TokenResult> {
    let header;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      return fail('malformed', 'the bearer token is not a JWT');
    }
    if (token.split('.').length !== 3) return fail('malformed', 'the bearer token is not a signed JWT (JWS compact form)');
    const alg = header.alg;
    if (typeof alg !== 'string' || !allowed.has(alg)) return fail('algorithm', `token algorithm ${JSON.stringify(alg ?? null)} is not allowed`);
    if (header.kid !== undefined && typeof header.kid !== 'string') return fail('malformed', 'token kid is not a string');
    const choice = await keyFor(alg as JwtAlgorithm, header.kid);
    if ('ok' in choice) return choice;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, choice.key, {
        algorithms: [alg],
        issuer: cfg.issuer,
        audience: cfg.audience,
        currentDate: new Date(nowMs),
        clockTolerance: cfg.clockToleranceSeconds,
        // A token without an expiry would be valid forever once leaked: refuse it.
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      return classifyError(err);
    }
    const user = claim(payload, cfg.userClaim);
    if (typeof user !== 'string' || user === '') return fail('claims', `token has no string claim ${cfg.userClaim}`);
    const rawGroups = claim(payload, cfg.groupsClaim);
    let groups: string[];
    if (rawGroups === undefined) groups = [];
    else if (typeof rawGroups === 'string') groups = [rawGroups];
    else if (Array.isArray(rawGroups) && rawGroups.every((g) => typeof g === 'string')) groups = rawGroups as string[];
    else return fail('claims', `token claim ${cfg.groupsClaim} must be a string or a list of strings`);
    const identity: Identity = Object.freeze({ user, groups: Object.freeze([...groups]), via: 'jwt' as const });
    const expMs = payload.exp! * 1000 + toleranceMs;
    const nbfMs = typeof payload.nbf === 'number' ? payload.nbf * 1000 - toleranceMs : -Infinity;
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(token, { identity, expMs, nbfMs, jwksVersion: choice.jwksVersion });
    return { ok: true, identity };
  }

  return {
    verify(token, nowMs = Date.now()) {
      const hit = cache.get(token);
      if (hit) {
        const keysCurrent = hit.jwksVersion === undefined || hit.jwksVersion === keys.jwks?.version;
        if (nowMs < hit.expMs && nowMs >= hit.nbfMs && keysCurrent) return { ok: true, identity: hit.identity };
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
  if (err instanceof joseErrors.JWTExpired) return fail('expired', 'token expired');
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return fail('not_yet_valid', 'token not valid yet (nbf)');
    if (err.claim === 'iss') return fail('issuer', 'token issuer is not accepted');
    if (err.claim === 'aud') return fail('audience', 'token audience is not accepted');
    if (err.claim === 'exp' && err.reason === 'missing') return fail('claims', 'token has no exp claim');
    return fail('claims', `token claim ${err.claim} is invalid: ${err.message}`);
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return fail('signature', 'token signature does not verify');
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return fail('algorithm', `token rejected: ${err.message}`);
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) return fail('malformed', `token rejected: ${err.message}`);
  // The algorithm was checked against the allowed list before: what jose refuses now is the key
  // itself (an RSA key for ES256, a P-384 key for ES256), reported as JOSENotSupported, TypeError
  // or a WebCrypto DOMException.
  return fail('key', `the configured key cannot verify this token: ${(err as Error)?.message ?? String(err)}`);
}

/** `dockward token`: an HS256 token for tests and demos. */
export function mintToken(secret: Buffer, claims: { sub: string; groups: string[] }, ttlSeconds: number, extra: Record<string, unknown> = {}): string {
  return jwt.sign({ ...extra, groups: claims.groups }, createSecretKey(secret), { algorithm: 'HS256', subject: claims.sub, expiresIn: ttlSeconds });
}
