/**
 * HTTP/1.1 framing for the raw relay: request heads, daemon response heads and chunked bodies,
 * parsed straight from the socket's Buffers. Pure: no I/O, no state outside ChunkedReader.
 *
 * A request the gateway frames one way and dockerd (Go net/http) another is a smuggling hole,
 * so request heads are read strictly (RFC 9112) and anything ambiguous is refused with a 400
 * whose message the caller shows as `dockward: <message>`. Response heads come from dockerd
 * (trusted) and are read just strictly enough to find the message's end.
 *
 * Lines are scanned with byte loops over a class table, and strings are only cut (latin1,
 * as Node does, from one decode of the head) for the parts the caller keeps: a docker CLI
 * `GET /_ping` head parses in about 1 µs.
 */

export interface RequestHead {
  readonly method: string;
  /** Request target exactly as received (origin-form expected; absolute-form is passed through, the classify stage refuses it). */
  readonly url: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  readonly minor: 0 | 1;
  /** Node IncomingHttpHeaders semantics: lower-case names; duplicates: first value wins for
   *  age, authorization, content-length, content-type, etag, expires, from, host, if-modified-since,
   *  if-unmodified-since, last-modified, location, max-forwards, proxy-authorization, referer,
   *  retry-after, server, user-agent; set-cookie -> string[]; cookie joined with '; '; every other duplicate joined with ', '. */
  readonly headers: Record<string, string | string[] | undefined>;
  /** [name, value, name, value, ...] as received (name case kept, value with surrounding spaces/tabs trimmed). */
  readonly rawHeaders: string[];
  /** Bytes of the head including the final CRLF CRLF. */
  readonly headLength: number;
  /** Parsed Content-Length, undefined when absent. */
  readonly contentLength: number | undefined;
  /** A Transfer-Encoding header is present (its value is in headers['transfer-encoding']; the caller refuses anything but "chunked"). */
  readonly hasTransferEncoding: boolean;
  /** HTTP/1.1 unless a Connection token is "close"; HTTP/1.0 only with a Connection token "keep-alive". */
  readonly keepAlive: boolean;
  /** An Upgrade header is present AND a Connection token is "upgrade" (case-insensitive). */
  readonly upgrade: boolean;
}

export type ParseResult<T> =
  | { readonly kind: 'incomplete' } // need more bytes (and the bytes so far are <= max)
  | { readonly kind: 'error'; readonly status: 400 | 431 | 505; readonly message: string }
  | { readonly kind: 'ok'; readonly head: T };

export interface ResponseHead {
  readonly status: number;
  readonly headLength: number;
  readonly contentLength: number | undefined;
  /** The last Transfer-Encoding coding is "chunked". */
  readonly chunked: boolean;
  /** A Connection token is "close", or the response is HTTP/1.0 without "keep-alive". */
  readonly close: boolean;
}

/** Header lines (fields, not counting the start line) a head may carry; more is a 431. */
export const MAX_HEADER_FIELDS = 200;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
const SEMICOLON = 0x3b;

// Byte classes, one table lookup per byte instead of a chain of range tests.
const TCHAR = 1; // token characters (RFC 9110 5.6.2): method, field names
const TARGET = 2; // request-target: VCHAR (0x21-0x7e); no SP, CTL, DEL or >= 0x80
const FIELD = 4; // field-value / reason / chunk-ext: HTAB, SP..~, obs-text 0x80-0xff
const HEX = 8;
const TCHAR_SYMBOLS = "!#$%&'*+-.^_`|~";
const CLASS = Uint8Array.from({ length: 256 }, (_, b) => {
  const digit = b >= 0x30 && b <= 0x39;
  const letter = (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
  const vchar = b >= 0x21 && b <= 0x7e;
  return (
    (digit || letter || TCHAR_SYMBOLS.includes(String.fromCharCode(b)) ? TCHAR : 0) |
    (vchar ? TARGET : 0) |
    (vchar || b === SP || b === HTAB || b >= 0x80 ? FIELD : 0) |
    (digit || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66) ? HEX : 0)
  );
});

type HeadError = { readonly kind: 'error'; readonly status: 400 | 431 | 505; readonly message: string };
const INCOMPLETE = Object.freeze({ kind: 'incomplete' as const });

function fail(status: 400 | 431 | 505, message: string): HeadError {
  return { kind: 'error', status, message };
}

/** `0x7f` style, for messages about a byte that is not printable. */
function hex(b: number | undefined): string {
  return `0x${(b ?? 0).toString(16).padStart(2, '0')}`;
}

/**
 * The answer when the parse ran out of bytes (`limit` = min(buf.length, maxHeadBytes)): wait
 * for more, unless the first maxHeadBytes are all there, so that the head can only end past them.
 */
function outOfBytes(buf: Buffer, maxHeadBytes: number, what: string): HeadError | typeof INCOMPLETE {
  return buf.length >= maxHeadBytes ? fail(431, `${what} is larger than ${maxHeadBytes} bytes`) : INCOMPLETE;
}

/*
 * Heads are parsed in one pass that stops where the blank line is: no search for CRLF CRLF
 * first (Buffer#indexOf alone costs as much as the parse of a /_ping head), and a malformed
 * line is refused as soon as it arrives - a client ending lines with a bare LF would
 * otherwise wait for a CRLF CRLF that never comes. Loops are bounded by `limit`; running into
 * it is `incomplete` (or 431 at maxHeadBytes).
 */

/**
 * Field offsets of the head being parsed: [nameStart, nameEnd, valueStart, valueEnd] per line.
 * Module scratch (parsing is synchronous and never re-entered), so that the response parser can
 * match names on bytes without cutting strings it would throw away.
 */
const fieldOffsets = new Int32Array(MAX_HEADER_FIELDS * 4);
/** Fields readFields put in fieldOffsets. */
let fieldCount = 0;

/**
 * Reads the field lines from `pos` to the blank line into fieldOffsets/fieldCount.
 * Returns the head length (the index after the blank line's CRLF), or what to answer instead.
 */
function readFields(buf: Buffer, pos: number, limit: number, maxHeadBytes: number, what: string): number | HeadError | typeof INCOMPLETE {
  let count = 0;
  for (;;) {
    if (pos >= limit) return outOfBytes(buf, maxHeadBytes, what);
    const first = buf[pos]!;
    if (first === CR) {
      if (pos + 1 >= limit) return outOfBytes(buf, maxHeadBytes, what);
      if (buf[pos + 1] !== LF) return fail(400, `malformed ${what}: bare CR (lines must end in CRLF)`);
      fieldCount = count;
      return pos + 2;
    }
    if (count === MAX_HEADER_FIELDS) return fail(431, `${what} has more than ${MAX_HEADER_FIELDS} header fields`);
    if (first === SP || first === HTAB) {
      return fail(400, `malformed ${what}: a header line starts with whitespace (obsolete line folding is not accepted)`);
    }
    let p = pos;
    while (p < limit && CLASS[buf[p]!]! & TCHAR) p++;
    if (p === limit) return outOfBytes(buf, maxHeadBytes, what);
    const c = buf[p]!;
    if (c !== COLON || p === pos) {
      if (c === LF) return fail(400, `malformed ${what}: bare LF (lines must end in CRLF)`);
      if (c === CR) return fail(400, `malformed ${what}: header line without a colon`);
      if (c === COLON) return fail(400, `malformed ${what}: empty header name`);
      if (c === SP || c === HTAB) return fail(400, `malformed ${what}: whitespace between header name and colon`);
      return fail(400, `malformed ${what}: invalid character ${hex(c)} in header name`);
    }
    const nameEnd = p++;
    while (p < limit && (buf[p] === SP || buf[p] === HTAB)) p++;
    const valueStart = p;
    while (p < limit && CLASS[buf[p]!]! & FIELD) p++;
    if (p === limit) return outOfBytes(buf, maxHeadBytes, what);
    if (buf[p] !== CR) {
      if (buf[p] === LF) return fail(400, `malformed ${what}: bare LF (lines must end in CRLF)`);
      return fail(400, `malformed ${what}: invalid character ${hex(buf[p])} in header value`);
    }
    if (p + 1 === limit) return outOfBytes(buf, maxHeadBytes, what);
    if (buf[p + 1] !== LF) return fail(400, `malformed ${what}: bare CR (lines must end in CRLF)`);
    let valueEnd = p;
    while (valueEnd > valueStart && (buf[valueEnd - 1] === SP || buf[valueEnd - 1] === HTAB)) valueEnd--;
    const o = count++ * 4;
    fieldOffsets[o] = pos;
    fieldOffsets[o + 1] = nameEnd;
    fieldOffsets[o + 2] = valueStart;
    fieldOffsets[o + 3] = valueEnd;
    pos = p + 2;
  }
}

/** Content-Length: 1+ ASCII digits, at most Number.MAX_SAFE_INTEGER; -1 otherwise. */
function parseLength(buf: Buffer, start: number, end: number): number {
  if (start === end) return -1;
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return -1;
    // Checked before multiplying, so n stays an exact integer.
    if (n > (Number.MAX_SAFE_INTEGER - d) / 10) return -1;
    n = n * 10 + d;
  }
  return n;
}

/** Case-insensitive match of buf[start, end) against a lower-case token of letters and '-'. */
function bytesEqualLower(buf: Buffer, start: number, end: number, lower: string): boolean {
  if (end - start !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    // `| 0x20` lower-cases letters; of the bytes a token may hold, only '-' itself maps to '-'.
    if ((buf[start + i]! | 0x20) !== lower.charCodeAt(i)) return false;
  }
  return true;
}

const CONN_CLOSE = 1;
const CONN_KEEP_ALIVE = 2;
const CONN_UPGRADE = 4;

/** Connection tokens of buf[start, end) (comma-separated, OWS-trimmed, case-insensitive) as flags. */
function connectionFlags(buf: Buffer, start: number, end: number): number {
  let flags = 0;
  let i = start;
  while (i < end) {
    while (i < end && (buf[i] === SP || buf[i] === HTAB || buf[i] === 0x2c)) i++;
    const t = i;
    while (i < end && buf[i] !== 0x2c) i++;
    let e = i;
    while (e > t && (buf[e - 1] === SP || buf[e - 1] === HTAB)) e--;
    if (bytesEqualLower(buf, t, e, 'close')) flags |= CONN_CLOSE;
    else if (bytesEqualLower(buf, t, e, 'keep-alive')) flags |= CONN_KEEP_ALIVE;
    else if (bytesEqualLower(buf, t, e, 'upgrade')) flags |= CONN_UPGRADE;
  }
  return flags;
}

/**
 * Header names Docker clients send, by length. A name that matches one gets this constant,
 * already internalised string as its key: lower-casing a fresh slice and keying the record
 * with it (V8 hashes and internalises it) cost more than the rest of a /_ping parse.
 */
const KNOWN_NAMES: (readonly string[] | undefined)[] = [];
for (const name of [
  'host', 'user-agent', 'authorization', 'content-type', 'content-length', 'connection', 'upgrade',
  'transfer-encoding', 'accept', 'accept-encoding', 'expect', 'x-registry-auth', 'x-registry-config', 'cookie',
]) {
  KNOWN_NAMES[name.length] = [...(KNOWN_NAMES[name.length] ?? []), name];
}

/** The lower-case name of buf[start, end) (whose latin1 text is `raw`). */
function lowerName(buf: Buffer, start: number, end: number, raw: string): string {
  const known = KNOWN_NAMES[end - start];
  if (known !== undefined) {
    for (const name of known) if (bytesEqualLower(buf, start, end, name)) return name;
  }
  return raw.toLowerCase();
}

/** Names whose duplicates Node drops (IncomingMessage matchKnownFields): the first value wins. */
const FIRST_VALUE_WINS = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host',
  'if-modified-since', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards',
  'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent',
]);

/**
 * Header records have no Object.prototype: a header named `constructor` or `__proto__` must
 * read as that header or as absent. A constructor with a prototype-less prototype keeps V8 in
 * fast mode, which Object.create(null) does not.
 */
const HeaderRecord = function HeaderRecord() {} as unknown as new () => Record<string, string | string[] | undefined>;
HeaderRecord.prototype = Object.create(null);

const HTTP_1_ = [0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e]; // "HTTP/1."

/** buf[at, at + 7) is "HTTP/1.". */
function isHttp1(buf: Buffer, at: number): boolean {
  for (let i = 0; i < 7; i++) if (buf[at + i] !== HTTP_1_[i]) return false;
  return true;
}

/** Parses the request head at the start of `buf` (bytes after the head are the body/next request; ignore them). */
export function parseRequestHead(buf: Buffer, maxHeadBytes: number): ParseResult<RequestHead> {
  const what = 'request head';
  // Only the first maxHeadBytes can hold a head we accept; past them are body bytes at best.
  const limit = Math.min(buf.length, maxHeadBytes);

  // Request line: METHOD SP request-target SP HTTP/1.x CRLF, single spaces.
  // Empty lines before it are refused, not skipped: Go's server refuses them too.
  let p = 0;
  while (p < limit && CLASS[buf[p]!]! & TCHAR) p++;
  if (p === limit) return outOfBytes(buf, maxHeadBytes, what);
  if (buf[p] !== SP || p === 0) {
    const b = buf[p]!;
    if (p === 0 && b === CR) return fail(400, 'malformed request head: empty line before the request line');
    if (b === LF) return fail(400, 'malformed request head: bare LF (lines must end in CRLF)');
    if (b === CR) return fail(400, 'malformed request line: no request target');
    return fail(400, `malformed request line: invalid character ${hex(b)} in method`);
  }
  const methodEnd = p;
  const targetStart = ++p;
  while (p < limit && CLASS[buf[p]!]! & TARGET) p++;
  if (p === limit) return outOfBytes(buf, maxHeadBytes, what);
  if (buf[p] !== SP || p === targetStart) {
    const b = buf[p]!;
    if (b === LF) return fail(400, 'malformed request head: bare LF (lines must end in CRLF)');
    if (p === targetStart) return fail(400, b === SP ? 'malformed request line: more than one space after the method' : 'malformed request line: no request target');
    if (b === CR) return fail(400, 'malformed request line: no HTTP version');
    if (b >= 0x80) return fail(400, `malformed request line: non-ASCII byte ${hex(b)} in request target (percent-encode it)`);
    return fail(400, `malformed request line: invalid character ${hex(b)} in request target`);
  }
  const targetEnd = p;
  const v = ++p;
  while (p < limit && CLASS[buf[p]!]! & TARGET) p++;
  if (p === limit) return outOfBytes(buf, maxHeadBytes, what);
  if (buf[p] !== CR) {
    if (buf[p] === LF) return fail(400, 'malformed request head: bare LF (lines must end in CRLF)');
    return fail(400, 'malformed request line: expected "METHOD target HTTP/1.1" with single spaces');
  }
  const minorByte = buf[v + 7];
  if (p - v !== 8 || !isHttp1(buf, v) || (minorByte !== 0x30 && minorByte !== 0x31)) {
    const version = buf.toString('latin1', v, p);
    if (/^HTTP\/\d\.\d$/.test(version)) return fail(505, `HTTP version ${version.slice(5)} is not supported (use HTTP/1.1)`);
    if (version === '') return fail(400, 'malformed request line: no HTTP version');
    return fail(400, 'malformed request line: expected "METHOD target HTTP/1.1" with single spaces');
  }
  if (p + 1 === limit) return outOfBytes(buf, maxHeadBytes, what);
  if (buf[p + 1] !== LF) return fail(400, 'malformed request head: bare CR (lines must end in CRLF)');
  const minor = minorByte === 0x31 ? 1 : 0;

  const headLength = readFields(buf, p + 2, limit, maxHeadBytes, what);
  if (typeof headLength !== 'number') return headLength;
  const count = fieldCount;

  // One latin1 decode of the whole head, then slices: a native call per string would cost
  // more than the rest of the parse.
  const text = buf.toString('latin1', 0, headLength - 2);
  const headers = new HeaderRecord();
  const rawHeaders = new Array<string>(count * 2);
  let contentLength: number | undefined;
  let hasTransferEncoding = false;
  let hasHost = false;
  let hasUpgrade = false;
  let connection = 0;
  for (let i = 0; i < count; i++) {
    const o = i * 4;
    const vs = fieldOffsets[o + 2]!;
    const ve = fieldOffsets[o + 3]!;
    const rawName = text.slice(fieldOffsets[o]!, fieldOffsets[o + 1]!);
    const value = text.slice(vs, ve);
    rawHeaders[i * 2] = rawName;
    rawHeaders[i * 2 + 1] = value;
    const name = lowerName(buf, fieldOffsets[o]!, fieldOffsets[o + 1]!, rawName);
    switch (name) {
      case 'content-length': {
        // Two lengths, even equal ones, or a list: dockerd and we could pick different ones.
        if (contentLength !== undefined) return fail(400, 'request has more than one Content-Length header');
        const n = parseLength(buf, vs, ve);
        if (n < 0) return fail(400, `invalid Content-Length "${value}" (expected digits only, at most ${Number.MAX_SAFE_INTEGER})`);
        contentLength = n;
        break;
      }
      case 'transfer-encoding':
        hasTransferEncoding = true;
        break;
      case 'host':
        // Go's server refuses a second Host ("too many Host headers"); so do we, rather than
        // keep the first as Node would.
        if (hasHost) return fail(400, 'request has more than one Host header');
        hasHost = true;
        break;
      case 'connection':
        connection |= connectionFlags(buf, vs, ve);
        break;
      case 'upgrade':
        hasUpgrade = true;
        break;
    }
    const prev = headers[name];
    if (name === 'set-cookie') {
      if (prev === undefined) headers[name] = [value];
      else (prev as string[]).push(value);
    } else if (prev === undefined) {
      headers[name] = value;
    } else if (name === 'cookie') {
      headers[name] = `${prev as string}; ${value}`;
    } else if (!FIRST_VALUE_WINS.has(name)) {
      headers[name] = `${prev as string}, ${value}`;
    }
  }
  if (hasTransferEncoding) {
    if (contentLength !== undefined) return fail(400, 'request has both Transfer-Encoding and Content-Length');
    // RFC 9112 6.1: a Transfer-Encoding in HTTP/1.0 is faulty framing; Go ignores it there
    // (and would read the chunks as the next request), so it must not reach dockerd.
    if (minor === 0) return fail(400, 'Transfer-Encoding is not allowed in an HTTP/1.0 request');
  }
  // RFC 9112 3.2: an HTTP/1.1 request without Host is refused, as Go's server (dockerd) does.
  if (minor === 1 && !hasHost) return fail(400, 'missing required Host header');

  // "close" wins over "keep-alive", as in Go's shouldClose.
  const keepAlive = (connection & CONN_CLOSE) === 0 && (minor === 1 || (connection & CONN_KEEP_ALIVE) !== 0);
  return {
    kind: 'ok',
    head: {
      method: text.slice(0, methodEnd),
      url: text.slice(targetStart, targetEnd),
      minor,
      headers,
      rawHeaders,
      headLength,
      contentLength,
      hasTransferEncoding,
      keepAlive,
      upgrade: hasUpgrade && (connection & CONN_UPGRADE) !== 0,
    },
  };
}

export function parseResponseHead(buf: Buffer, maxHeadBytes: number): ParseResult<ResponseHead> {
  const what = 'response head';
  const limit = Math.min(buf.length, maxHeadBytes);

  // Status line: HTTP/1.x SP 3DIGIT [SP reason] CRLF (Go writes "HTTP/1.1 200 OK").
  let p = 0;
  while (p < limit && CLASS[buf[p]!]! & FIELD) p++;
  if (p === limit) return outOfBytes(buf, maxHeadBytes, what);
  if (buf[p] !== CR) {
    return fail(400, buf[p] === LF ? 'malformed response head: bare LF (lines must end in CRLF)' : `malformed response status line: invalid character ${hex(buf[p])}`);
  }
  const minorByte = buf[7];
  const d0 = buf[9]! - 0x30;
  const d1 = buf[10]! - 0x30;
  const d2 = buf[11]! - 0x30;
  if (
    p < 12 || !isHttp1(buf, 0) || (minorByte !== 0x30 && minorByte !== 0x31) || buf[8] !== SP ||
    !(d0 >= 1 && d0 <= 9 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9) || (p > 12 && buf[12] !== SP)
  ) {
    return fail(400, 'malformed response status line');
  }
  if (p + 1 === limit) return outOfBytes(buf, maxHeadBytes, what);
  if (buf[p + 1] !== LF) return fail(400, 'malformed response head: bare CR (lines must end in CRLF)');

  const headLength = readFields(buf, p + 2, limit, maxHeadBytes, what);
  if (typeof headLength !== 'number') return headLength;
  const count = fieldCount;

  let contentLength: number | undefined;
  let transferEncoding = false;
  let chunked = false;
  let connection = 0;
  for (let i = 0; i < count; i++) {
    const o = i * 4;
    const ns = fieldOffsets[o]!;
    const ne = fieldOffsets[o + 1]!;
    const vs = fieldOffsets[o + 2]!;
    const ve = fieldOffsets[o + 3]!;
    if (bytesEqualLower(buf, ns, ne, 'content-length')) {
      const n = parseLength(buf, vs, ve);
      if (n < 0) return fail(400, 'invalid Content-Length in response');
      // Repeated identical lengths are harmless (RFC 9110 8.6); differing ones are not.
      if (contentLength !== undefined && contentLength !== n) return fail(400, 'response has conflicting Content-Length headers');
      contentLength = n;
    } else if (bytesEqualLower(buf, ns, ne, 'transfer-encoding')) {
      transferEncoding = true;
      // Several lines concatenate: only the last coding of the last non-empty line counts.
      const last = lastCoding(buf, vs, ve);
      if (last !== undefined) chunked = last;
    } else if (bytesEqualLower(buf, ns, ne, 'connection')) {
      connection |= connectionFlags(buf, vs, ve);
    }
  }
  // Go's client drops Content-Length next to Transfer-Encoding; dockerd never sends both,
  // and a relay that framed by the other one would desynchronise the client: refuse.
  if (transferEncoding && contentLength !== undefined) return fail(400, 'response has both Transfer-Encoding and Content-Length');

  const close = (connection & CONN_CLOSE) !== 0 || (minorByte === 0x30 && (connection & CONN_KEEP_ALIVE) === 0);
  return {
    kind: 'ok',
    head: { status: d0 * 100 + d1 * 10 + d2, headLength, contentLength, chunked, close },
  };
}

/** Whether the last comma-separated coding of buf[start, end) is "chunked"; undefined when there is none. */
function lastCoding(buf: Buffer, start: number, end: number): boolean | undefined {
  let e = end;
  // Skip empty list elements and OWS at the end ("gzip, chunked ," ends in chunked).
  while (e > start && (buf[e - 1] === SP || buf[e - 1] === HTAB || buf[e - 1] === 0x2c)) e--;
  if (e === start) return undefined;
  let s = e;
  while (s > start && buf[s - 1] !== 0x2c) s--;
  while (buf[s] === SP || buf[s] === HTAB) s++;
  return bytesEqualLower(buf, s, e, 'chunked');
}

// ChunkedReader states.
const S_SIZE_FIRST = 0; // first hex digit of a chunk-size
const S_SIZE = 1; // further hex digits
const S_SIZE_WS = 2; // BWS after the digits, before ';' or CR
const S_EXT = 3; // chunk extensions, up to CR
const S_SIZE_LF = 4; // LF of the chunk-size line
const S_DATA = 5;
const S_DATA_CR = 6;
const S_DATA_LF = 7;
const S_TRAILER_LINE = 8; // start of a trailer line, or the final CRLF
const S_TRAILER_NAME = 9;
const S_TRAILER_VALUE = 10;
const S_TRAILER_LF = 11;
const S_FINAL_LF = 12;
const S_DONE = 13;
const S_FAILED = 14;

/** Go's maxLineLength for a chunk-size line (digits and extensions, without CRLF). */
const MAX_SIZE_LINE = 4096;
const MAX_SIZE_DIGITS = 16;
/** A chunk-size at or above 2^49 would pass Number.MAX_SAFE_INTEGER with one more digit. */
const SIZE_SHIFT_LIMIT = 2 ** 49;

/**
 * Incremental chunked-encoding reader (RFC 9112 section 7.1). Two uses:
 * - decode (request bodies, and responses the gateway must rewrite): push() returns the payload slices;
 * - scan (responses relayed byte for byte): the caller ignores `data` and uses `end` to find where the message stops.
 *
 * A state machine over single bytes, so it needs no buffer of its own and reads a message split
 * anywhere the same way. Accepted beyond Go: BWS before ';' (RFC 9112 allows it, Go refuses it);
 * refused beyond Go: a bare LF (as Go >= 1.24.2), controls in extensions, malformed trailer lines.
 */
export class ChunkedReader {
  private state = S_SIZE_FIRST;
  private size = 0; // chunk-size being read, then the payload bytes left of the chunk
  private digits = 0;
  private lineBytes = 0; // bytes of the current chunk-size line
  private trailerBytes = 0;
  private error = '';
  private readonly maxTrailerBytes: number;

  constructor(opts?: { maxTrailerBytes?: number /* default 16 KiB */ }) {
    this.maxTrailerBytes = opts?.maxTrailerBytes ?? 16 * 1024;
  }

  get done(): boolean {
    return this.state === S_DONE;
  }

  /** Part of a chunk's payload is still to come: the sender is in the middle of writing it. */
  get inChunk(): boolean {
    return this.state === S_DATA;
  }

  /**
   * Feeds the next bytes. Returns:
   *  { data: Buffer[] (payload slices, subarrays of `chunk`, no copy), end: -1 } while the message continues;
   *  { data, end: n } when the terminating 0-size chunk and its trailer section end at byte n of THIS chunk (bytes from n on belong to the next message);
   *  { error: string } on malformed framing (after an error, the reader stays failed).
   * Once done, every push returns { data: [], end: 0 }: all of it belongs to the next message.
   */
  push(chunk: Buffer): { data: Buffer[]; end: number } | { error: string } {
    if (this.state === S_FAILED) return { error: this.error };
    const data: Buffer[] = [];
    if (this.state === S_DONE) return { data, end: 0 };
    const len = chunk.length;
    let i = 0;
    while (i < len) {
      if (this.state === S_DATA) {
        const take = Math.min(this.size, len - i);
        data.push(chunk.subarray(i, i + take));
        i += take;
        this.size -= take;
        if (this.size === 0) this.state = S_DATA_CR;
        continue;
      }
      const b = chunk[i++]!;
      switch (this.state) {
        case S_SIZE_FIRST:
          if (!(CLASS[b]! & HEX)) return this.fail(b === CR || b === LF ? 'chunk size is missing' : `invalid character ${hex(b)} in chunk size`);
          this.size = hexValue(b);
          this.digits = 1;
          this.lineBytes = 1;
          this.state = S_SIZE;
          break;
        case S_SIZE:
          if (CLASS[b]! & HEX) {
            if (++this.digits > MAX_SIZE_DIGITS) return this.fail(`chunk size has more than ${MAX_SIZE_DIGITS} hex digits`);
            if (this.size >= SIZE_SHIFT_LIMIT) return this.fail('chunk size is too large');
            this.size = this.size * 16 + hexValue(b);
            this.lineBytes++;
            break;
          }
        // falls through: the digits ended
        case S_SIZE_WS:
          if (++this.lineBytes > MAX_SIZE_LINE) return this.fail('chunk size line is too long');
          if (b === SP || b === HTAB) this.state = S_SIZE_WS;
          else if (b === SEMICOLON) this.state = S_EXT;
          else if (b === CR) this.state = S_SIZE_LF;
          else return this.fail(b === LF ? 'bare LF in chunked body (lines must end in CRLF)' : `invalid character ${hex(b)} in chunk size`);
          break;
        case S_EXT:
          if (++this.lineBytes > MAX_SIZE_LINE) return this.fail('chunk size line is too long');
          if (b === CR) this.state = S_SIZE_LF;
          else if (!(CLASS[b]! & FIELD)) return this.fail(b === LF ? 'bare LF in chunked body (lines must end in CRLF)' : `invalid character ${hex(b)} in chunk extension`);
          break;
        case S_SIZE_LF:
          if (b !== LF) return this.fail('bare CR in chunked body (lines must end in CRLF)');
          this.state = this.size === 0 ? S_TRAILER_LINE : S_DATA;
          break;
        case S_DATA_CR:
          if (b !== CR) return this.fail('chunk data is not followed by CRLF (chunk size does not match the data)');
          this.state = S_DATA_LF;
          break;
        case S_DATA_LF:
          if (b !== LF) return this.fail('chunk data is not followed by CRLF (chunk size does not match the data)');
          this.state = S_SIZE_FIRST;
          break;
        case S_TRAILER_LINE:
          if (b === CR) {
            this.state = S_FINAL_LF;
            break;
          }
          if (!(CLASS[b]! & TCHAR)) return this.fail(b === LF ? 'bare LF in chunked body (lines must end in CRLF)' : 'malformed trailer line');
          if (++this.trailerBytes > this.maxTrailerBytes) return this.fail(`trailer section is larger than ${this.maxTrailerBytes} bytes`);
          this.state = S_TRAILER_NAME;
          break;
        case S_TRAILER_NAME:
          if (++this.trailerBytes > this.maxTrailerBytes) return this.fail(`trailer section is larger than ${this.maxTrailerBytes} bytes`);
          if (b === COLON) this.state = S_TRAILER_VALUE;
          else if (!(CLASS[b]! & TCHAR)) return this.fail('malformed trailer line');
          break;
        case S_TRAILER_VALUE:
          if (++this.trailerBytes > this.maxTrailerBytes) return this.fail(`trailer section is larger than ${this.maxTrailerBytes} bytes`);
          if (b === CR) this.state = S_TRAILER_LF;
          else if (!(CLASS[b]! & FIELD)) return this.fail(b === LF ? 'bare LF in chunked body (lines must end in CRLF)' : `invalid character ${hex(b)} in trailer`);
          break;
        case S_TRAILER_LF:
          if (++this.trailerBytes > this.maxTrailerBytes) return this.fail(`trailer section is larger than ${this.maxTrailerBytes} bytes`);
          if (b !== LF) return this.fail('bare CR in chunked body (lines must end in CRLF)');
          this.state = S_TRAILER_LINE;
          break;
        case S_FINAL_LF:
          if (b !== LF) return this.fail('bare CR in chunked body (lines must end in CRLF)');
          this.state = S_DONE;
          return { data, end: i };
      }
    }
    return { data, end: -1 };
  }

  private fail(message: string): { error: string } {
    this.state = S_FAILED;
    this.error = `malformed chunked body: ${message}`;
    return { error: this.error };
  }
}

function hexValue(b: number): number {
  return b <= 0x39 ? b - 0x30 : (b | 0x20) - 0x57;
}

const CRLF = Buffer.from('\r\n', 'latin1');

/** Frames one payload slice as a chunk: returns [sizeLineBuffer, payload, CRLF] to write with cork/uncork or writev. Empty payload -> []. */
export function frameChunk(payload: Buffer): Buffer[] {
  if (payload.length === 0) return [];
  return [Buffer.from(`${payload.length.toString(16)}\r\n`, 'latin1'), payload, CRLF];
}

export const LAST_CHUNK: Buffer = Buffer.from('0\r\n\r\n', 'latin1');
