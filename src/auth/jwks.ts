/**
 * JSON Web Key Sets (RFC 7517) for bearer tokens signed by an identity provider: read from a file
 * (`auth.jwt.jwksFile`) or fetched from the provider's `jwks_uri` (`auth.jwt.jwksUrl`).
 *
 * - Keys are imported once per fetch into KeyObjects and looked up by `kid`: a known key is
 *   answered synchronously, so only a token naming a key the gateway has not seen waits.
 * - An unknown `kid` triggers a fetch (that is how a provider's key rotation reaches the gateway
 *   without a restart), at most once per `refetchMs`: a stream of tokens with made-up `kid`s must
 *   not turn the gateway into a load generator against the provider.
 * - A key set older than `maxAgeMs` is fetched again in the background (removed keys stop
 *   verifying); the old keys stay in use until the new set has arrived and parsed.
 * - A fetch that fails, or a document that does not parse, keeps the keys there are.
 * - Symmetric (`oct`) keys are never taken from a key set: an HS* token is only ever checked
 *   against the configured secret (no HS/RS confusion, and no way to publish a shared secret).
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { JwtAlgorithm } from '../config/schema.js';

/** A key set document is small; anything larger is a mistake or an attack. */
export const MAX_JWKS_BYTES = 512 * 1024;
export const MAX_JWKS_KEYS = 100;

/** Where a key set comes from: returns the document's text. */
export interface JwksSource {
  /** `file /etc/dockward/jwks.json` or `https://idp.example.com/jwks`, for log lines and errors. */
  readonly description: string;
  fetch(): Promise<string>;
}

export interface JwksOptions {
  /** A key set older than this is fetched again (in the background) when next used. */
  maxAgeMs: number;
  /** Minimum time between two fetches caused by unknown `kid`s. */
  refetchMs: number;
  now?: () => number;
  /** A fetch failed or the document has problems; the keys in use are kept. */
  onError?: (message: string) => void;
  /** A fetch brought a different key set. */
  onUpdate?: (info: { keys: number; kids: string[]; version: number }) => void;
}

export type KeyLookup =
  | { ok: true; key: KeyObject }
  | { ok: false; reason: 'unknown_kid' | 'ambiguous' | 'unavailable'; message: string };

export interface Jwks {
  /** Changes whenever the set of keys changes: tokens verified under an older set are checked again. */
  readonly version: number;
  /** Number of usable keys now. */
  readonly size: number;
  /** The key for a token's `alg` and `kid`: synchronous when known, a Promise when a fetch is needed. */
  keyFor(alg: JwtAlgorithm, kid: string | undefined): KeyLookup | Promise<KeyLookup>;
  /** Fetches now (start-up, SIGHUP). Resolves true when a key set was loaded; never rejects. */
  refresh(): Promise<boolean>;
}

export interface JwkEntry {
  readonly kid?: string;
  readonly kty: string;
  readonly crv?: string;
  readonly alg?: string;
  readonly key: KeyObject;
}

export interface ParsedJwks {
  readonly keys: JwkEntry[];
  /** Keys that were skipped, and why; a document with no usable key at all is an error too. */
  readonly problems: string[];
}

/**
 * Reads a JWK Set document. Throws when it is not one at all; individual keys that cannot be used
 * are skipped and listed in `problems`.
 */
export function parseJwks(text: string): ParsedJwks {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new Error(`not JSON: ${(err as Error).message}`);
  }
  const list = (doc as { keys?: unknown } | null)?.keys;
  if (typeof doc !== 'object' || doc === null || !Array.isArray(list)) throw new Error('not a JWK Set: expected an object with a "keys" array');
  if (list.length > MAX_JWKS_KEYS) throw new Error(`the key set holds ${list.length} keys; at most ${MAX_JWKS_KEYS} are accepted`);
  const problems: string[] = [];
  const entries: JwkEntry[] = [];
  list.forEach((raw, i) => {
    const name = typeof (raw as { kid?: unknown })?.kid === 'string' ? `key ${JSON.stringify((raw as { kid: string }).kid)}` : `key #${i}`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return problems.push(`${name}: not an object`);
    const jwk = raw as Record<string, unknown>;
    if (jwk.kid !== undefined && typeof jwk.kid !== 'string') return problems.push(`${name}: kid is not a string`);
    if (jwk.kty === 'oct') return problems.push(`${name}: symmetric (oct) keys are never taken from a key set`);
    if (jwk.d !== undefined) return problems.push(`${name}: holds private key material; the provider must publish public keys only`);
    if (jwk.use !== undefined && jwk.use !== 'sig') return problems.push(`${name}: use ${JSON.stringify(jwk.use)} is not "sig"`);
    if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes('verify'))) {
      return problems.push(`${name}: key_ops does not include "verify"`);
    }
    if (jwk.alg !== undefined && (typeof jwk.alg !== 'string' || familyOf(jwk.alg) === undefined)) {
      return problems.push(`${name}: alg ${JSON.stringify(jwk.alg)} is not a signature algorithm the gateway verifies`);
    }
    let key: KeyObject;
    try {
      key = createPublicKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' });
    } catch (err) {
      return problems.push(`${name}: cannot import: ${(err as Error).message}`);
    }
    entries.push({
      kid: jwk.kid as string | undefined,
      kty: String(jwk.kty),
      crv: typeof jwk.crv === 'string' ? jwk.crv : undefined,
      alg: jwk.alg as string | undefined,
      key,
    });
  });
  // Two keys under one kid: a token naming it could be checked against either. Use neither.
  const counts = new Map<string, number>();
  for (const e of entries) if (e.kid !== undefined) counts.set(e.kid, (counts.get(e.kid) ?? 0) + 1);
  const keys = entries.filter((e) => {
    if (e.kid === undefined || counts.get(e.kid) === 1) return true;
    return false;
  });
  for (const [kid, n] of counts) if (n > 1) problems.push(`key ${JSON.stringify(kid)}: ${n} keys share this kid; none of them is used`);
  return { keys, problems };
}

type Family = 'rsa' | 'ec-P-256' | 'ec-P-384' | 'ec-P-521' | 'okp';

function familyOf(alg: string): Family | undefined {
  if (/^(RS|PS)(256|384|512)$/.test(alg)) return 'rsa';
  if (alg === 'ES256') return 'ec-P-256';
  if (alg === 'ES384') return 'ec-P-384';
  if (alg === 'ES512') return 'ec-P-521';
  if (alg === 'EdDSA') return 'okp';
  return undefined;
}

/** Whether a key can check a token signed with `alg`: the key's type, curve and own `alg` must fit. */
export function keyFits(e: JwkEntry, alg: string): boolean {
  if (e.alg !== undefined && e.alg !== alg) return false;
  switch (familyOf(alg)) {
    case 'rsa':
      return e.kty === 'RSA';
    case 'ec-P-256':
      return e.kty === 'EC' && e.crv === 'P-256';
    case 'ec-P-384':
      return e.kty === 'EC' && e.crv === 'P-384';
    case 'ec-P-521':
      return e.kty === 'EC' && e.crv === 'P-521';
    case 'okp':
      return e.kty === 'OKP' && (e.crv === 'Ed25519' || e.crv === 'Ed448');
    default:
      return false;
  }
}

function fingerprint(keys: JwkEntry[]): string {
  return keys
    .map((k) => JSON.stringify([k.kid ?? null, k.alg ?? null, k.key.export({ format: 'jwk' })]))
    .sort()
    .join('\n');
}

export function createJwks(source: JwksSource, opts: JwksOptions): Jwks {
  const now = opts.now ?? Date.now;
  let keys: JwkEntry[] = [];
  let loaded = false;
  let version = 0;
  let print = '';
  let loadedAt = -Infinity;
  let attemptedAt = -Infinity;
  let inflight: Promise<boolean> | undefined;

  function refresh(): Promise<boolean> {
    inflight ??= (async () => {
      attemptedAt = now();
      try {
        const text = await source.fetch();
        const parsed = parseJwks(text);
        for (const p of parsed.problems) opts.onError?.(`${source.description}: ${p}`);
        if (parsed.keys.length === 0) throw new Error('no usable key in the key set');
        loadedAt = now();
        loaded = true;
        const next = fingerprint(parsed.keys);
        if (next !== print) {
          print = next;
          keys = parsed.keys;
          version += 1;
          opts.onUpdate?.({ keys: keys.length, kids: keys.map((k) => k.kid ?? '(no kid)'), version });
        }
        return true;
      } catch (err) {
        opts.onError?.(`${source.description}: ${(err as Error).message}${loaded ? '; keeping the keys loaded before' : ''}`);
        return false;
      } finally {
        inflight = undefined;
      }
    })();
    return inflight;
  }

  function select(alg: JwtAlgorithm, kid: string | undefined): KeyLookup {
    if (!loaded) return { ok: false, reason: 'unavailable', message: `no key set could be loaded from ${source.description}` };
    if (kid !== undefined) {
      const e = keys.find((k) => k.kid === kid);
      if (!e) return { ok: false, reason: 'unknown_kid', message: `no key with kid ${JSON.stringify(kid)}` };
      if (!keyFits(e, alg)) return { ok: false, reason: 'unknown_kid', message: `key ${JSON.stringify(kid)} cannot verify ${alg}` };
      return { ok: true, key: e.key };
    }
    // Providers with a single key often omit kid; with several, guessing would be wrong.
    const fitting = keys.filter((k) => keyFits(k, alg));
    if (fitting.length === 1) return { ok: true, key: fitting[0]!.key };
    if (fitting.length === 0) return { ok: false, reason: 'unknown_kid', message: `no key for ${alg} in the key set` };
    return { ok: false, reason: 'ambiguous', message: `the token names no kid and ${fitting.length} keys could verify ${alg}` };
  }

  return {
    get version() {
      return version;
    },
    get size() {
      return keys.length;
    },
    refresh,
    keyFor(alg, kid) {
      const t = now();
      const mayFetch = t - attemptedAt >= opts.refetchMs;
      if (t - loadedAt >= opts.maxAgeMs && mayFetch && !inflight) void refresh();
      const r = select(alg, kid);
      if (r.ok || r.reason === 'ambiguous') return r;
      if (inflight) return inflight.then(() => select(alg, kid));
      if (!mayFetch) {
        const wait = Math.ceil((opts.refetchMs - (t - attemptedAt)) / 1000);
        return { ...r, message: `${r.message} (the key set is fetched again in ${wait}s at the earliest)` };
      }
      return refresh().then(() => select(alg, kid));
    },
  };
}

/** `auth.jwt.jwksFile`: read on every refresh, so a replaced file is picked up without a restart. */
export function jwksFileSource(file: string): JwksSource {
  return {
    description: `file ${file}`,
    async fetch() {
      const info = await stat(file);
      if (info.size > MAX_JWKS_BYTES) throw new Error(`${info.size} bytes; a key set is limited to ${MAX_JWKS_BYTES}`);
      return readFile(file, 'utf8');
    },
  };
}

export interface UrlSourceOptions {
  /** PEM CA bundle for a provider whose certificate a private CA signed. */
  caFile?: string;
  timeoutMs?: number;
}

/**
 * `auth.jwt.jwksUrl`: one GET, bounded in time and size. Redirects are not followed (the
 * configured URL is the one that was reviewed) and only a 200 answer counts.
 */
export function jwksUrlSource(url: string, opts: UrlSourceOptions = {}): JwksSource {
  const target = new URL(url);
  const ca = opts.caFile ? readFileSync(opts.caFile) : undefined;
  const timeoutMs = opts.timeoutMs ?? 5000;
  return {
    description: url,
    fetch() {
      return new Promise<string>((resolve, reject) => {
        const mod = target.protocol === 'https:' ? https : http;
        const req = mod.request(target, { method: 'GET', headers: { accept: 'application/jwk-set+json, application/json' }, ca, timeout: timeoutMs, agent: false }, (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            const where = res.headers.location ? ` (redirect to ${res.headers.location} not followed: configure the final URL)` : '';
            reject(new Error(`HTTP ${res.statusCode}${where}`));
            return;
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_JWKS_BYTES) {
              req.destroy(new Error(`answer larger than ${MAX_JWKS_BYTES} bytes`));
              return;
            }
            chunks.push(c);
          });
          res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
          res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
        req.on('error', reject);
        req.end();
      });
    },
  };
}
