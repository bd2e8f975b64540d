import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChunkedReader, frameChunk, LAST_CHUNK, parseRequestHead, parseResponseHead, type RequestHead, type ResponseHead } from '../../src/relay/http1.js';

const MAX = 16 * 1024;
const b = (s: string) => Buffer.from(s, 'latin1');

function request(text: string, max = MAX): RequestHead {
  const r = parseRequestHead(b(text), max);
  if (r.kind !== 'ok') throw new Error(`expected a head, got ${JSON.stringify(r)}`);
  return r.head;
}

function response(text: string): ResponseHead {
  const r = parseResponseHead(b(text), MAX);
  if (r.kind !== 'ok') throw new Error(`expected a head, got ${JSON.stringify(r)}`);
  return r.head;
}

const CLI_GET =
  'GET /v1.41/containers/json?all=1 HTTP/1.1\r\nHost: api.moby.localhost\r\nUser-Agent: Docker-Client/20.10.24 (linux)\r\nAuthorization: Bearer x.y.z\r\n\r\n';
const ATTACH =
  'POST /v1.41/containers/abc/attach?stream=1&stdin=1 HTTP/1.1\r\nHost: api.moby.localhost\r\nUser-Agent: Docker-Client/20.10.24 (linux)\r\n' +
  'Content-Length: 0\r\nConnection: Upgrade\r\nContent-Type: text/plain\r\nUpgrade: tcp\r\n\r\n';

describe('parseRequestHead: heads Docker clients send', () => {
  it('reads a docker CLI GET', () => {
    const head = request(CLI_GET);
    expect(head).toEqual({
      method: 'GET',
      url: '/v1.41/containers/json?all=1',
      minor: 1,
      headers: { host: 'api.moby.localhost', 'user-agent': 'Docker-Client/20.10.24 (linux)', authorization: 'Bearer x.y.z' },
      rawHeaders: ['Host', 'api.moby.localhost', 'User-Agent', 'Docker-Client/20.10.24 (linux)', 'Authorization', 'Bearer x.y.z'],
      headLength: CLI_GET.length,
      contentLength: undefined,
      hasTransferEncoding: false,
      keepAlive: true,
      upgrade: false,
    });
  });

  it('reads an attach upgrade', () => {
    const head = request(ATTACH);
    expect(head).toMatchObject({ method: 'POST', url: '/v1.41/containers/abc/attach?stream=1&stdin=1', contentLength: 0, upgrade: true, keepAlive: true });
    expect(head.headers.upgrade).toBe('tcp');
  });

  it('stops at the head: body bytes and a pipelined request are left alone', () => {
    const text = 'POST /v1.41/containers/create HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}GET /_ping HTTP/1.1\r\n\r\n';
    const head = request(text);
    expect(head.headLength).toBe(text.indexOf('{}'));
    expect(head.contentLength).toBe(2);
  });

  it('reads a head with no header fields, and a chunked upload', () => {
    expect(request('GET /_ping HTTP/1.0\r\n\r\n')).toMatchObject({ url: '/_ping', rawHeaders: [], headLength: 23 });
    const head = request('POST /build HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n');
    expect(head).toMatchObject({ hasTransferEncoding: true, contentLength: undefined, headers: { 'transfer-encoding': 'chunked' } });
  });

  it('trims spaces and tabs around values, keeps inner ones, and decodes latin1', () => {
    const head = request('GET / HTTP/1.1\r\nHost: h\r\nX-A: \t a \t b \t\r\nX-Empty:\r\nX-Latin: caf\xe9\r\n\r\n');
    expect(head.rawHeaders).toEqual(['Host', 'h', 'X-A', 'a \t b', 'X-Empty', '', 'X-Latin', 'café']);
  });

  it('passes targets through for the classify stage (absolute-form, *)', () => {
    expect(request('GET http://x/_ping HTTP/1.1\r\nHost: x\r\n\r\n').url).toBe('http://x/_ping');
    expect(request('OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n').url).toBe('*');
  });

  it('accepts the largest exact Content-Length', () => {
    expect(request(`PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: ${Number.MAX_SAFE_INTEGER}\r\n\r\n`).contentLength).toBe(Number.MAX_SAFE_INTEGER);
    expect(request('PUT / HTTP/1.1\r\nHost: h\r\ncontent-length:007\r\n\r\n').contentLength).toBe(7);
  });
});

describe('parseRequestHead: incomplete heads', () => {
  it('is incomplete at every split point before the final CRLF CRLF', () => {
    for (const text of [CLI_GET, ATTACH]) {
      for (let n = 0; n < text.length; n++) expect(parseRequestHead(b(text.slice(0, n)), MAX), `${n} bytes`).toEqual({ kind: 'incomplete' });
      expect(parseRequestHead(b(text), MAX).kind).toBe('ok');
    }
  });

  it('refuses a malformed line before the head is complete (a bare-LF client would wait forever)', () => {
    expect(parseRequestHead(b('GET / HTTP/1.1\nHost: x\n'), MAX)).toMatchObject({ kind: 'error', status: 400, message: expect.stringMatching(/bare LF/) });
    expect(parseRequestHead(b('GET / HTTP/1.1\r\nHost : x'), MAX)).toMatchObject({ kind: 'error', status: 400 });
    expect(parseRequestHead(b('GET / HTTP/1.1\r\nX: \x00'), MAX)).toMatchObject({ kind: 'error', status: 400 });
    expect(parseResponseHead(b('HTTP/1.1 200 OK\n'), MAX)).toMatchObject({ kind: 'error', status: 400 });
  });

  it('refuses a head that reaches the limit without ending, and one that ends past it', () => {
    const text = `GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ${'a'.repeat(100)}\r\n\r\n`;
    expect(parseRequestHead(b(text), text.length).kind).toBe('ok');
    expect(parseRequestHead(b(text), text.length - 1)).toMatchObject({ kind: 'error', status: 431 });
    expect(parseRequestHead(b(text.slice(0, 64)), 64)).toMatchObject({ kind: 'error', status: 431 });
    expect(parseRequestHead(b(text.slice(0, 63)), 64)).toEqual({ kind: 'incomplete' });
  });

  it('refuses more than 200 header fields, complete or not', () => {
    const fields = (n: number) => 'GET / HTTP/1.1\r\nHost: h\r\n' + 'X: y\r\n'.repeat(n - 1);
    expect(request(fields(200) + '\r\n').rawHeaders).toHaveLength(400);
    expect(parseRequestHead(b(fields(201) + '\r\n'), MAX)).toMatchObject({ kind: 'error', status: 431 });
    expect(parseRequestHead(b(fields(210)), MAX)).toMatchObject({ kind: 'error', status: 431 });
  });
});

describe('parseRequestHead: refusals', () => {
  const H = 'Host: h\r\n';
  it.each([
    // Line endings
    ['a bare LF ending a header line', `GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n`, 400, /bare LF/],
    ['a bare LF ending the request line', `GET / HTTP/1.1\nHost: h\r\n\r\n`, 400, /bare LF/],
    ['a bare CR inside a value', `GET / HTTP/1.1\r\nX: a\rb\r\n\r\n`, 400, /bare CR/],
    ['a bare CR ending the request line', `GET / HTTP/1.1\rHost: h\r\n\r\n`, 400, /bare CR/],
    ['an empty line before the request line', `\r\nGET / HTTP/1.1\r\n${H}\r\n`, 400, /empty line before the request line/],
    ['an empty head', '\r\n\r\n', 400, /empty line/],
    // Request line
    ['a non-token method', `G(T / HTTP/1.1\r\n${H}\r\n`, 400, /in method/],
    ['two spaces after the method', `GET  / HTTP/1.1\r\n${H}\r\n`, 400, /more than one space/],
    ['two spaces before the version', `GET /  HTTP/1.1\r\n${H}\r\n`, 400, /single spaces/],
    ['a tab as separator', `GET\t/ HTTP/1.1\r\n${H}\r\n`, 400, /in method/],
    ['no version', `GET /\r\n${H}\r\n`, 400, /no HTTP version/],
    ['no target', `GET\r\n${H}\r\n`, 400, /no request target/],
    ['a control byte in the target', `GET /a\x01b HTTP/1.1\r\n${H}\r\n`, 400, /0x01 in request target/],
    ['DEL in the target', `GET /a\x7f HTTP/1.1\r\n${H}\r\n`, 400, /0x7f in request target/],
    ['a raw non-ASCII byte in the target', `GET /caf\xe9 HTTP/1.1\r\n${H}\r\n`, 400, /non-ASCII byte 0xe9/],
    ['a lower-case version', `GET / http/1.1\r\n${H}\r\n`, 400, /single spaces/],
    ['trailing space after the version', `GET / HTTP/1.1 \r\n${H}\r\n`, 400, /single spaces/],
    ['HTTP/2.0', `GET / HTTP/2.0\r\n${H}\r\n`, 505, /HTTP version 2\.0 is not supported/],
    ['HTTP/1.2', `GET / HTTP/1.2\r\n${H}\r\n`, 505, /1\.2/],
    ['HTTP/0.9', `GET / HTTP/0.9\r\n${H}\r\n`, 505, /0\.9/],
    // Field lines
    ['obs-fold (space)', `GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n`, 400, /obsolete line folding/],
    ['obs-fold (tab)', `GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n`, 400, /obsolete line folding/],
    ['whitespace before the colon', `GET / HTTP/1.1\r\nHost : h\r\n\r\n`, 400, /between header name and colon/],
    ['an empty header name', `GET / HTTP/1.1\r\n: v\r\n\r\n`, 400, /empty header name/],
    ['a header line without a colon', `GET / HTTP/1.1\r\nHost\r\n\r\n`, 400, /without a colon/],
    ['a non-token header name', `GET / HTTP/1.1\r\nX[1]: v\r\n\r\n`, 400, /0x5b in header name/],
    ['NUL in a value', `GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n`, 400, /0x00 in header value/],
    ['DEL in a value', `GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n`, 400, /0x7f in header value/],
    ['a vertical tab in a value', `GET / HTTP/1.1\r\nX: a\x0bb\r\n\r\n`, 400, /0x0b in header value/],
    // Framing
    ['two Content-Length headers, even equal', `POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n`, 400, /more than one Content-Length/],
    ['a Content-Length list', `POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n`, 400, /invalid Content-Length/],
    ['a signed Content-Length', `POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n`, 400, /invalid Content-Length/],
    ['an empty Content-Length', `POST / HTTP/1.1\r\nContent-Length: \r\n\r\n`, 400, /invalid Content-Length/],
    ['a hex Content-Length', `POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n`, 400, /invalid Content-Length/],
    ['a Content-Length beyond 2^53-1', `POST / HTTP/1.1\r\nContent-Length: 9007199254740992\r\n\r\n`, 400, /invalid Content-Length/],
    ['Transfer-Encoding with Content-Length', `POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n`, 400, /both Transfer-Encoding and Content-Length/],
    ['Transfer-Encoding in HTTP/1.0', `POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n`, 400, /HTTP\/1\.0/],
    ['two Host headers (Go refuses them)', `GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n`, 400, /more than one Host/],
    ['an HTTP/1.1 request without Host (Go refuses it)', `GET /_ping HTTP/1.1\r\nX: y\r\n\r\n`, 400, /missing required Host header/],
    ['an HTTP/1.1 upgrade without Host', `POST /containers/x/attach HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`, 400, /missing required Host header/],
  ] as const)('refuses %s', (_name, text, status, message) => {
    const r = parseRequestHead(b(text), MAX);
    expect(r).toMatchObject({ kind: 'error', status });
    expect(r.kind === 'error' && r.message).toMatch(message);
  });
});

describe('parseRequestHead: header semantics', () => {
  it('merges duplicates as Node does', () => {
    const head = request(
      'GET / HTTP/1.0\r\nAuthorization: Bearer first\r\nauthorization: Bearer second\r\nUser-Agent: a\r\nUSER-AGENT: b\r\n' +
        'Accept: x\r\nAccept: y\r\nCookie: a=1\r\nCookie: b=2\r\nSet-Cookie: s=1\r\nX-Foo: 1\r\nx-foo: 2\r\nX-Foo: 3\r\n\r\n',
    );
    expect(head.headers).toEqual({
      authorization: 'Bearer first',
      'user-agent': 'a',
      accept: 'x, y',
      cookie: 'a=1; b=2',
      'set-cookie': ['s=1'],
      'x-foo': '1, 2, 3',
    });
    expect(head.rawHeaders).toHaveLength(24);
    expect(request('GET / HTTP/1.0\r\nSet-Cookie: a\r\nSet-Cookie: b\r\n\r\n').headers['set-cookie']).toEqual(['a', 'b']);
  });

  it('joins repeated Transfer-Encoding lines for the caller to refuse', () => {
    const head = request('POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n');
    expect(head.headers['transfer-encoding']).toBe('chunked, chunked');
  });

  it('keeps headers named like Object members as plain headers', () => {
    const head = request('GET / HTTP/1.0\r\n__proto__: x\r\nconstructor: y\r\nconstructor: z\r\n\r\n');
    expect(head.headers['__proto__']).toBe('x');
    expect(head.headers['constructor']).toBe('y, z');
    expect(head.headers['toString']).toBeUndefined();
  });

  it.each([
    ['HTTP/1.1', '', true],
    ['HTTP/1.1', 'Connection: close\r\n', false],
    ['HTTP/1.1', 'Connection: Keep-Alive, CLOSE\r\n', false],
    ['HTTP/1.1', 'Connection: keep-alive\r\nConnection: close\r\n', false],
    ['HTTP/1.1', 'Connection: closed\r\n', true],
    ['HTTP/1.0', '', false],
    ['HTTP/1.0', 'Connection: keep-alive\r\n', true],
    ['HTTP/1.0', 'Connection: foo ,\tKeep-Alive \r\n', true],
    ['HTTP/1.0', 'Connection: keep-alive, close\r\n', false],
  ])('%s with %j keeps the connection: %s', (version, fields, keepAlive) => {
    const head = request(`GET / ${version}\r\nHost: h\r\n${fields}\r\n`);
    expect(head.minor).toBe(version === 'HTTP/1.0' ? 0 : 1);
    expect(head.keepAlive).toBe(keepAlive);
  });

  it.each([
    ['Connection: upgrade\r\nUpgrade: tcp\r\n', true],
    ['Connection: keep-alive, UPGRADE\r\nUpgrade: tcp\r\n', true],
    ['Upgrade: tcp\r\n', false],
    ['Connection: Upgrade\r\n', false],
    ['Connection: upgraded\r\nUpgrade: tcp\r\n', false],
  ])('%j is an upgrade: %s', (fields, upgrade) => {
    expect(request(`POST /exec/x/start HTTP/1.1\r\nHost: h\r\n${fields}\r\n`).upgrade).toBe(upgrade);
  });
});

describe('parseResponseHead', () => {
  it('reads dockerd answers', () => {
    const upgraded = 'HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n';
    expect(response(`${upgraded}raw stream bytes`)).toEqual({
      status: 101,
      headLength: upgraded.length,
      contentLength: undefined,
      chunked: false,
      close: false,
    });
    expect(response('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n')).toMatchObject({ status: 200, chunked: true, contentLength: undefined });
    expect(response('HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\n\r\nOK')).toMatchObject({ contentLength: 2, chunked: false, close: false, headLength: 57 });
    expect(response('HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n')).toMatchObject({ status: 204, close: true });
  });

  it('accepts an empty reason with or without its space', () => {
    expect(response('HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n').status).toBe(200);
    expect(response('HTTP/1.1 404\r\n\r\n').status).toBe(404);
  });

  it.each([
    ['HTTP/1.0 200 OK\r\n\r\n', true],
    ['HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n', false],
    ['HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\n\r\n', true],
    ['HTTP/1.1 200 OK\r\n\r\n', false],
  ])('%j closes: %s', (text, close) => {
    expect(response(text).close).toBe(close);
  });

  it.each([
    ['chunked', true],
    ['gzip, Chunked', true],
    ['chunked, gzip', false],
    ['gzip,chunked ,', true],
    ['gzip\r\nTransfer-Encoding: chunked', true],
    ['chunked\r\nTransfer-Encoding: gzip', false],
  ])('Transfer-Encoding %j is chunked: %s', (te, chunked) => {
    expect(response(`HTTP/1.1 200 OK\r\nTransfer-Encoding: ${te}\r\n\r\n`).chunked).toBe(chunked);
  });

  it('is incomplete at every split point, and limited in size', () => {
    const text = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n';
    for (let n = 0; n < text.length; n++) expect(parseResponseHead(b(text.slice(0, n)), MAX)).toEqual({ kind: 'incomplete' });
    expect(parseResponseHead(b(text), 20)).toMatchObject({ kind: 'error', status: 431 });
  });

  it.each([
    ['a status line without a code', 'HTTP/1.1 OK\r\n\r\n'],
    ['a two-digit status', 'HTTP/1.1 20 OK\r\n\r\n'],
    ['HTTP/2', 'HTTP/2.0 200 OK\r\n\r\n'],
    ['no space before the reason', 'HTTP/1.1 200OK\r\n\r\n'],
    ['a bare LF', 'HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n'],
    ['a non-numeric Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n'],
    ['conflicting Content-Lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n'],
    ['Transfer-Encoding with Content-Length', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n'],
    ['obs-fold', 'HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n'],
  ])('refuses %s', (_name, text) => {
    expect(parseResponseHead(b(text), MAX)).toMatchObject({ kind: 'error', status: 400 });
  });
});

type Decoded = { payload: string; end: number } | { error: string };

/** Feeds `input` cut at `cuts` (sorted offsets); `end` is made absolute. */
function decode(input: Buffer, cuts: readonly number[], opts?: { maxTrailerBytes?: number }): Decoded {
  const reader = new ChunkedReader(opts);
  const data: Buffer[] = [];
  let from = 0;
  for (const to of [...cuts, input.length]) {
    const r = reader.push(input.subarray(from, to));
    if ('error' in r) return { error: r.error };
    data.push(...r.data);
    if (r.end >= 0) {
      expect(reader.done).toBe(true);
      return { payload: Buffer.concat(data).toString('latin1'), end: from + r.end };
    }
    from = to;
  }
  return { payload: Buffer.concat(data).toString('latin1'), end: -1 };
}

const every = (n: number) => Array.from({ length: n - 1 }, (_, i) => i + 1);

/** Same result whole, at every single cut, and one byte at a time. */
function decodeEverySplit(text: string, opts?: { maxTrailerBytes?: number }): Decoded {
  const input = b(text);
  const whole = decode(input, [], opts);
  for (let cut = 0; cut <= input.length; cut++) expect(decode(input, [cut], opts), `cut at ${cut}`).toEqual(whole);
  expect(decode(input, every(input.length), opts)).toEqual(whole);
  return whole;
}

describe('ChunkedReader', () => {
  it('tells when part of a chunk\'s payload is still to come (the relay reads the rest into a pooled buffer)', () => {
    const r = new ChunkedReader();
    const seen: boolean[] = [];
    for (const piece of ['5\r\nab', 'c', 'de', '\r\n', '3\r\n', 'xyz\r\n0\r\n\r\n']) {
      r.push(Buffer.from(piece));
      seen.push(r.inChunk);
    }
    expect(seen).toEqual([true, true, false, false, true, false]);
    expect(r.done).toBe(true);
  });

  it.each([
    ['one chunk', '5\r\nhello\r\n0\r\n\r\n', 'hello'],
    ['several chunks, upper and lower hex', 'A\r\n0123456789\r\na\r\nabcdefghij\r\n1\r\n!\r\n0\r\n\r\n', '0123456789abcdefghij!'],
    ['leading zeros, 16 digits', '0000000000000003\r\nabc\r\n0000000000000000\r\n\r\n', 'abc'],
    ['CRLF inside the data', '4\r\n\r\n\r\n\r\n0\r\n\r\n', '\r\n\r\n'],
    ['an empty body', '0\r\n\r\n', ''],
    ['extensions', '5;name=value;flag\r\nhello\r\n0;last="yes; really"\r\n\r\n', 'hello'],
    ['BWS before an extension (RFC 9112)', '5 \t;a=b\r\nhello\r\n0 ;x\r\n\r\n', 'hello'],
    ['whitespace after the size (Go trims it)', '5 \r\nhello\r\n0\t\r\n\r\n', 'hello'],
    ['trailers', '3\r\nabc\r\n0\r\nX-Checksum: 1234\r\nX-Other:\tv\r\n\r\n', 'abc'],
  ])('reads %s at every split', (_name, text, payload) => {
    expect(decodeEverySplit(text)).toEqual({ payload, end: text.length });
  });

  it('ends where the next message starts', () => {
    const text = '3\r\nabc\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n';
    expect(decodeEverySplit(text)).toEqual({ payload: 'abc', end: text.indexOf('HTTP') });
  });

  it('returns payload slices of the pushed chunk, without copying', () => {
    const input = b('5\r\nhello\r\n0\r\n\r\n');
    const r = new ChunkedReader().push(input);
    if ('error' in r) throw new Error(r.error);
    expect(r.data).toHaveLength(1);
    expect(r.data[0]!.buffer).toBe(input.buffer);
    expect(r.data[0]!.byteOffset).toBe(input.byteOffset + 3);
  });

  it('waits while the message continues, then hands every later byte to the next message', () => {
    const reader = new ChunkedReader();
    expect(reader.push(b('5\r\nhel'))).toMatchObject({ end: -1 });
    expect(reader.done).toBe(false);
    expect(reader.push(b('lo\r\n0\r\n\r\nnext'))).toMatchObject({ end: 9 });
    expect(reader.done).toBe(true);
    expect(reader.push(b('more'))).toEqual({ data: [], end: 0 });
  });

  it.each([
    ['a non-hex size', 'g\r\nx\r\n0\r\n\r\n', /invalid character 0x67 in chunk size/],
    ['a missing size', '\r\nx\r\n0\r\n\r\n', /chunk size is missing/],
    ['a negative size', '-1\r\nx\r\n0\r\n\r\n', /invalid character 0x2d/],
    ['a 0x prefix', '0x5\r\nhello\r\n0\r\n\r\n', /invalid character 0x78/],
    ['17 hex digits', '00000000000000005\r\nhello\r\n0\r\n\r\n', /more than 16 hex digits/],
    ['a size beyond 2^53-1', '20000000000000\r\n', /too large/],
    ['space inside the size', '1 2\r\n', /invalid character 0x32 in chunk size/],
    ['a bare LF after the size', '5\nhello\r\n0\r\n\r\n', /bare LF/],
    ['a bare CR after the size', '5\rhello\r\n0\r\n\r\n', /bare CR/],
    ['data longer than its size', '3\r\nhello\r\n0\r\n\r\n', /not followed by CRLF/],
    ['data shorter than its size', '6\r\nhello\r\n0\r\n\r\n', /not followed by CRLF/],
    ['a bare LF after data', '5\r\nhello\n0\r\n\r\n', /not followed by CRLF/],
    ['a control byte in an extension', '5;a\x00\r\nhello\r\n0\r\n\r\n', /0x00 in chunk extension/],
    ['a bare LF ending the trailers', '0\r\n\n', /bare LF/],
    ['a bare LF ending a trailer line', '0\r\nX: y\n\r\n', /bare LF/],
    ['a trailer line without a colon', '0\r\nX-Y\r\n\r\n', /malformed trailer line/],
    ['a folded trailer line', '0\r\nX: y\r\n z\r\n\r\n', /malformed trailer line/],
    ['a bare CR after the last chunk', '0\r\n\rX', /bare CR/],
  ])('refuses %s, at every split', (_name, text, message) => {
    const r = decodeEverySplit(text);
    expect(r).toHaveProperty('error', expect.stringMatching(message));
  });

  it('refuses trailers over maxTrailerBytes (the final CRLF is not counted)', () => {
    const trailer = 'X-A: 12345\r\n'; // 12 bytes
    expect(decodeEverySplit(`0\r\n${trailer}\r\n`, { maxTrailerBytes: 12 })).toMatchObject({ end: 17 });
    expect(decodeEverySplit(`0\r\n${trailer}\r\n`, { maxTrailerBytes: 11 })).toHaveProperty('error', expect.stringMatching(/larger than 11 bytes/));
    expect(decode(b(`0\r\n${'X: y\r\n'.repeat(3000)}\r\n`), [])).toHaveProperty('error', expect.stringMatching(/larger than 16384 bytes/));
  });

  it('refuses a chunk-size line over 4096 bytes', () => {
    expect(decode(b(`1;${'a'.repeat(5000)}\r\nx\r\n0\r\n\r\n`), [])).toHaveProperty('error', expect.stringMatching(/too long/));
  });

  it('stays failed after an error', () => {
    const reader = new ChunkedReader();
    const first = reader.push(b('zz'));
    expect(first).toHaveProperty('error');
    expect(reader.push(b('0\r\n\r\n'))).toEqual(first);
    expect(reader.done).toBe(false);
  });

  it('decodes any framing of any payload the same way, however it is split (property)', () => {
    const ext = fc.constantFrom('', ';a', ';a=b', ' ;q="x;y"', '\t;k=v;k2');
    const chunk = fc.record({ data: fc.uint8Array({ minLength: 1, maxLength: 40 }), ext, upper: fc.boolean(), zeros: fc.integer({ min: 0, max: 3 }) });
    const trailer = fc.array(fc.constantFrom('X-A: 1', 'Checksum:\tabc ', 'E:'), { maxLength: 3 });
    fc.assert(
      fc.property(fc.array(chunk, { maxLength: 6 }), trailer, fc.uint8Array({ maxLength: 8 }), fc.array(fc.nat(), { maxLength: 10 }), (chunks, trailers, next, rawCuts) => {
        const parts: Buffer[] = [];
        for (const c of chunks) {
          const size = c.data.length.toString(16);
          parts.push(b(`${'0'.repeat(c.zeros)}${c.upper ? size.toUpperCase() : size}${c.ext}\r\n`), Buffer.from(c.data), b('\r\n'));
        }
        parts.push(b(`0\r\n${trailers.map((t) => `${t}\r\n`).join('')}\r\n`));
        const end = parts.reduce((n, p) => n + p.length, 0);
        const input = Buffer.concat([...parts, Buffer.from(next)]);
        const cuts = [...new Set(rawCuts.map((n) => n % (input.length + 1)))].sort((x, y) => x - y);
        const payload = Buffer.concat(chunks.map((c) => Buffer.from(c.data))).toString('latin1');
        expect(decode(input, cuts)).toEqual({ payload, end });
      }),
    );
  });

  it('round-trips frameChunk output', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 })), fc.array(fc.nat(), { maxLength: 8 }), (payloads, rawCuts) => {
        const framed = Buffer.concat([...payloads.flatMap((p) => frameChunk(Buffer.from(p))), LAST_CHUNK]);
        const cuts = [...new Set(rawCuts.map((n) => n % (framed.length + 1)))].sort((x, y) => x - y);
        expect(decode(framed, cuts)).toEqual({ payload: Buffer.concat(payloads).toString('latin1'), end: framed.length });
      }),
    );
  });

  it('frames a chunk as size line, payload, CRLF; nothing for an empty payload', () => {
    const payload = b('x'.repeat(300));
    const framed = frameChunk(payload);
    expect(framed.map((p) => p.toString('latin1'))).toEqual(['12c\r\n', payload.toString('latin1'), '\r\n']);
    expect(framed[1]).toBe(payload);
    expect(frameChunk(Buffer.alloc(0))).toEqual([]);
    expect(LAST_CHUNK.toString('latin1')).toBe('0\r\n\r\n');
  });
});
