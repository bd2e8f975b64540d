/**
 * Read a request target the way dockerd reads it, or refuse it.
 *
 * dockerd routes on Go's decoded `r.URL.Path` with gorilla/mux (no `UseEncodedPath`), after
 * mux's `cleanPath` redirect, and reads query parameters with `r.Form.Get` (url.ParseQuery,
 * first value). A gateway that authorises one reading of a path while dockerd executes
 * another is an authorisation bypass, so every target where the two readings could differ,
 * or that dockerd would not execute as sent, is refused here instead of being interpreted.
 *
 * Sources (behaviour confirmed against dockerd 20.10.24, see shared/design/pitfalls.md):
 * - Go net/url `parse(rawURL, viaRequest=true)`: no `#` handling (a `#` stays in the path),
 *   the query starts at the first `?`, the path is percent-decoded by `unescape(encodePath)`
 *   (`%2F` becomes `/`, `+` stays `+`, a bad escape is a 400).
 * - gorilla/mux `Router.ServeHTTP` + `cleanPath`: a decoded path that `path.Clean` changes
 *   (`//`, `/./`, `/../`) is answered `301` with the cleaned path, not executed.
 * - moby daemon/server/server.go `versionMatcher = "/v{version:[0-9.]+}"`: every route is
 *   registered with and without that prefix; the version middleware then rejects versions
 *   out of range with 400.
 * - Go net/url `parseQuery`: pairs split on `&`, a `;` is an error (Go >= 1.17; dockerd's
 *   ParseForm answers 400 "invalid semicolon separator in query"), `+` is a space, a bad
 *   escape is an error, repeated keys keep every value and `Form.Get` returns the first.
 */
import type { CanonicalRequest } from '../types.js';

export type CanonicaliseResult =
  | { readonly ok: true; readonly request: CanonicalRequest }
  | { readonly ok: false; readonly status: 400 | 404; readonly reason: string };

export type QueryParseResult =
  | { readonly ok: true; readonly values: ReadonlyMap<string, readonly string[]> }
  | { readonly ok: false; readonly reason: string };

/**
 * Go >= 1.24.12 / 1.25.6 refuses queries with more parameters than this
 * (GODEBUG urlmaxqueryparams, GO-2026-4341); older Go parses them all. Refusing above the
 * limit agrees with both.
 */
const MAX_QUERY_PARAMS = 10_000;

/** dockerd's version matcher: a first segment of this shape is read as an API version. */
const VERSION_LIKE = /^v[0-9.]+$/;
/** What we accept as a version: `v1.41`. dockerd also takes `v1.41.0`, `v01.41`; we refuse. */
const VERSION = /^v(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)$/;
/** Printable ASCII except `#`: what a request target may contain. */
const PRINTABLE_WITHOUT_HASH = /^[\x21\x22\x24-\x7e]*$/;
/** C0 controls and DEL. */
const CONTROL = /[\x00-\x1f\x7f]/;
/** A `.` or `..` segment anywhere in a path. */
const DOT_SEGMENT = /(?:^|\/)\.\.?(?:\/|$)/;

/**
 * Query records have no Object.prototype: a client-chosen key such as `constructor` or
 * `__proto__` must read as that parameter or as absent, never as an inherited member.
 * (A constructor whose prototype is an empty prototype-less object: V8 keeps these objects
 * in fast mode, where `Object.create(null)` tripled the cost of canonicalise.)
 */
const QueryRecord = function QueryRecord() {} as unknown as new () => Record<string, string>;
QueryRecord.prototype = Object.create(null);

/** `fatal`: refuse bytes Go would keep but JS cannot hold; `ignoreBOM`: keep a leading U+FEFF. */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const BAD_ESCAPE = 1;
const BAD_UTF8 = 2;

export function canonicalise(rawUrl: string): CanonicaliseResult {
  // Go reads `http://host/path` (absolute-form) as `/path` and `*` specially; we only ever
  // see origin-form from Docker clients, so anything else is refused, not interpreted.
  if (rawUrl.charCodeAt(0) !== 0x2f /* / */) {
    return refuse(400, 'request target must be a path starting with "/"');
  }
  if (!PRINTABLE_WITHOUT_HASH.test(rawUrl)) {
    // Go keeps `#...` in the path (a request target has no fragment), so dockerd would route
    // `/x#y` as a path ending in `#y`: refuse rather than guess which part the client meant.
    if (rawUrl.includes('#')) return refuse(400, 'request target contains "#"');
    // Space and controls: Go's server refuses them. Raw non-ASCII: Node hands us the bytes
    // as latin1 while Go keeps UTF-8, so the two would disagree; clients percent-encode.
    return refuse(400, 'request target contains a space, control or non-ASCII character');
  }
  const queryStart = rawUrl.indexOf('?');
  const rawPath = queryStart < 0 ? rawUrl : rawUrl.slice(0, queryStart);
  const rawQuery = queryStart < 0 ? '' : rawUrl.slice(queryStart + 1);

  let path = rawPath;
  if (rawPath.includes('%')) {
    const decoded = percentDecode(rawPath, false);
    if (decoded === BAD_ESCAPE) return refuse(400, 'request path contains an invalid percent-encoding');
    if (decoded === BAD_UTF8) return refuse(400, 'request path is not valid UTF-8 after percent-decoding');
    // Go's regexp `.` does not match `\n`, so `%0A` changes which route matches; no Docker
    // object name contains a control character.
    if (CONTROL.test(decoded)) {
      return refuse(400, 'request path contains a control character after percent-decoding');
    }
    path = decoded;
  }

  // Checked on the decoded path, as gorilla/mux does: `%2F%2F` and `%2E%2E` count.
  if (path.includes('//')) {
    return refuse(400, 'request path contains an empty segment ("//"); dockerd would redirect it');
  }
  if (DOT_SEGMENT.test(path)) {
    return refuse(400, 'request path contains a "." or ".." segment; dockerd would redirect it');
  }
  // dockerd routes almost nothing with a trailing slash (404); the exceptions (`GET /networks/`
  // lists networks, `DELETE /images/x/` deletes image `x/`) are not worth the doubt.
  if (path.length > 1 && path.charCodeAt(path.length - 1) === 0x2f) {
    return refuse(404, 'request path ends with "/"; dockerd routes no such path');
  }

  let apiVersion: string | undefined;
  const firstEnd = path.indexOf('/', 1);
  const first = firstEnd < 0 ? path.slice(1) : path.slice(1, firstEnd);
  if (VERSION_LIKE.test(first)) {
    if (!VERSION.test(first)) {
      return refuse(400, `API version prefix "/${first}" is not of the form /v<major>.<minor>`);
    }
    // `/v1.41` alone matches no dockerd route (every versioned route continues with "/").
    if (firstEnd < 0) return refuse(404, `request path "/${first}" names an API version but no endpoint`);
    apiVersion = first.slice(1);
    path = path.slice(firstEnd);
  }

  let query: Record<string, string>;
  let repeated: Set<string> | undefined;
  if (rawQuery === '') {
    query = new QueryRecord();
  } else {
    const parsed = firstValues(rawQuery);
    if (typeof parsed === 'string') return refuse(400, parsed);
    query = parsed.query;
    repeated = parsed.repeated;
  }

  const request: CanonicalRequest =
    apiVersion === undefined ? { path, query, rawQuery } : { path, apiVersion, query, rawQuery };
  return { ok: true, request: repeated === undefined ? request : { ...request, repeated } };
}

/** The path as the client addressed it: `/v1.41/containers/abc` for a versioned request. */
export function versionedPath(req: CanonicalRequest, path: string): string {
  return req.apiVersion ? `/v${req.apiVersion}${path}` : path;
}

/**
 * Every value of every query parameter, as Go's `url.ParseQuery` reads them, for the few
 * parameters dockerd reads as lists (`names` of `GET /images/get`, repeated `t` of
 * `POST /build`, ...), where the first value alone is not what dockerd acts on.
 */
export function parseQueryValues(rawQuery: string): QueryParseResult {
  const values = new Map<string, string[]>();
  const failure = forEachQueryPair(rawQuery, (key, value) => {
    const list = values.get(key);
    if (list === undefined) values.set(key, [value]);
    else list.push(value);
  });
  return failure === undefined ? { ok: true, values } : { ok: false, reason: failure };
}

/**
 * `r.Form.Get(key)` for every key: the first value, in a record without a prototype; and the
 * keys given more than once (undefined when none is).
 */
function firstValues(rawQuery: string): { query: Record<string, string>; repeated: Set<string> | undefined } | string {
  const query = new QueryRecord();
  let repeated: Set<string> | undefined;
  const failure = forEachQueryPair(rawQuery, (key, value) => {
    if (!(key in query)) query[key] = value;
    else (repeated ??= new Set()).add(key);
  });
  return failure ?? { query, repeated };
}

/** Go's `parseQuery`, except that where Go skips a pair and reports an error we stop. */
function forEachQueryPair(rawQuery: string, onPair: (key: string, value: string) => void): string | undefined {
  const failure = checkQuery(rawQuery);
  if (failure !== undefined) return failure;
  for (let start = 0; start <= rawQuery.length; ) {
    let end = rawQuery.indexOf('&', start);
    if (end < 0) end = rawQuery.length;
    if (end > start) {
      const pair = decodePair(rawQuery.slice(start, end));
      if (typeof pair === 'string') return pair;
      onPair(pair[0], pair[1]);
    }
    start = end + 1;
  }
  return undefined;
}

function checkQuery(rawQuery: string): string | undefined {
  let count = 1;
  for (let i = rawQuery.indexOf('&'); i >= 0; i = rawQuery.indexOf('&', i + 1)) count++;
  if (count > MAX_QUERY_PARAMS) return `query has more than ${MAX_QUERY_PARAMS} parameters`;
  if (rawQuery.includes(';')) return 'query contains ";" (Go refuses it as a separator)';
  return undefined;
}

/** One non-empty `key[=value]` piece -> `[key, value]`, or the reason it is refused. */
function decodePair(pair: string): readonly [string, string] | string {
  const eq = pair.indexOf('=');
  const key = percentDecode(eq < 0 ? pair : pair.slice(0, eq), true);
  const value = eq < 0 ? '' : percentDecode(pair.slice(eq + 1), true);
  if (key === BAD_ESCAPE || value === BAD_ESCAPE) return 'query contains an invalid percent-encoding';
  if (key === BAD_UTF8 || value === BAD_UTF8) return 'query is not valid UTF-8 after percent-decoding';
  return [key, value];
}

/**
 * Go's `unescape`: `%XX` -> byte (two hex digits required), `+` -> space in query mode only;
 * the bytes must then be UTF-8 for a JS string to hold them. `decodeURIComponent` does exactly
 * that (it throws on a bad escape and on bytes that are not UTF-8) natively; when it throws,
 * the byte-wise decoder below says which of the two went wrong.
 */
function percentDecode(s: string, plusIsSpace: boolean): string | typeof BAD_ESCAPE | typeof BAD_UTF8 {
  const spaced = plusIsSpace && s.includes('+') ? s.replaceAll('+', ' ') : s;
  if (!s.includes('%')) return spaced;
  try {
    return decodeURIComponent(spaced);
  } catch {
    const failure = percentDecodeBytes(s, plusIsSpace);
    // The two decoders agree; if they ever did not, refusing is the safe reading.
    return typeof failure === 'string' ? BAD_UTF8 : failure;
  }
}

/** The input is printable ASCII (checked by the caller), so it maps one char to one byte. */
function percentDecodeBytes(s: string, plusIsSpace: boolean): string | typeof BAD_ESCAPE | typeof BAD_UTF8 {
  const bytes = new Uint8Array(s.length);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25 /* % */) {
      const hi = hexValue(s.charCodeAt(i + 1));
      const lo = hexValue(s.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return BAD_ESCAPE;
      bytes[n++] = hi * 16 + lo;
      i += 2;
    } else {
      bytes[n++] = plusIsSpace && c === 0x2b /* + */ ? 0x20 : c;
    }
  }
  try {
    return UTF8.decode(bytes.subarray(0, n));
  } catch {
    return BAD_UTF8;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1; // also for NaN past the end of the string
}

function refuse(status: 400 | 404, reason: string): CanonicaliseResult {
  return { ok: false, status, reason };
}
