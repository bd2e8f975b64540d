/**
 * The gateway in-process against a scripted unix-socket daemon: for what a real dockerd cannot
 * be made to show on demand (it going away and coming back) and for seeing exactly which bytes
 * reach the daemon. The real-daemon behaviour is covered by test/e2e.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startGateway, type RunningGateway } from '../../src/main.js';
import { createLogger } from '../../src/log.js';
import { sendBufferBytes, sendBufferOf, UPSTREAM_SEND_BUFFER_BYTES } from '../../src/relay/sockopt.js';

const SECRET = 'k'.repeat(64);
const dir = mkdtempSync(path.join(os.tmpdir(), 'dw-int-'));
const sock = path.join(dir, 'docker.sock');
const token = (sub: string, groups: string[]) => jwt.sign({ sub, groups }, SECRET, { algorithm: 'HS256', expiresIn: 600 });

interface Seen { method: string; url: string; headers: http.IncomingHttpHeaders; body: string; httpVersion?: string }
let seen: Seen[] = [];
let daemon: http.Server | undefined;
let releaseWait: (() => void) | undefined;
/** Set when the daemon side of a held `wait` went away before its body was sent. */
let heldWaitCut = false;

/** Random bytes for the transfer tests: any byte out of place shows in the hash. */
const PAYLOAD = randomBytes(24 * 1024 * 1024);
/** A list-sized answer body (~48 KiB): with its head, one read of the daemon's socket. */
const LIST = randomBytes(48 * 1024);
/** A link's target, or '' when the link is gone (an fd closed meanwhile). */
const readlinkOr = (p: string) => {
  try {
    return readlinkSync(p);
  } catch {
    return '';
  }
};
const sha256 = (b: Buffer | Buffer[]) => {
  const h = createHash('sha256');
  for (const x of Array.isArray(b) ? b : [b]) h.update(x);
  return h.digest('hex');
};

function startDaemon(): Promise<void> {
  daemon = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const bytes = Buffer.concat(chunks);
      const body = bytes.toString();
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: req.url?.includes('digest=1') ? '' : body });
      if (req.url === '/_ping') return res.end('OK');
      if (req.url?.includes('digest=1')) {
        // An upload of PAYLOAD: the daemon answers what it received.
        res.writeHead(200, { 'Content-Type': 'application/json' });
        return res.end(JSON.stringify({ bytes: bytes.length, sha256: sha256(bytes) }));
      }
      if (req.url?.startsWith('/v1.41/containers/abc/export')) {
        // PAYLOAD as dockerd streams an export: in pieces, honouring backpressure; chunked, or
        // with a Content-Length when `sized=1`.
        res.writeHead(200, { 'Content-Type': 'application/x-tar', ...(req.url.includes('sized=1') ? { 'Content-Length': String(PAYLOAD.length) } : {}) });
        let off = 0;
        const more = (): void => {
          while (off < PAYLOAD.length) {
            const piece = PAYLOAD.subarray(off, off + 32 * 1024);
            off += piece.length;
            if (!res.write(piece)) return void res.once('drain', more);
          }
          res.end();
        };
        return more();
      }
      if (req.url?.startsWith('/v1.41/images/json')) {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        // `bad=1`: an answer the gateway cannot read as a list.
        if (req.url.includes('bad=1')) return res.end('[{"Id":"a"');
        return res.end(JSON.stringify([
          { Id: 'sha256:a', RepoTags: ['a:1'], Labels: { 'dockward.owner': 'alice' } },
          { Id: 'sha256:b', RepoTags: ['b:1'], Labels: { 'dockward.owner': 'bob' } },
        ]));
      }
      if (req.url?.startsWith('/v1.41/containers/json')) {
        // `big=1`: an answer that comes with its head in one read, as a 50-container list does.
        if (req.url.includes('pieces=1')) {
          // Chunked, as a stream sends lines: a piece with the head, the rest 20 ms later.
          res.writeHead(200, { 'Content-Type': 'application/json' });
          res.write(LIST.subarray(0, 20 * 1024));
          setTimeout(() => res.end(LIST.subarray(20 * 1024)), 20);
          return;
        }
        if (req.url.includes('big=1')) {
          // `close=1`: the daemon ends its connection after the answer (the relay then ends the client's).
          res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': String(LIST.length), ...(req.url.includes('close=1') ? { Connection: 'close' } : {}) });
          return res.end(LIST);
        }
        res.writeHead(200, { 'Content-Type': 'application/json' });
        return res.end('[]');
      }
      if (req.url?.startsWith('/v1.41/events')) {
        // Two containers' events, a line each, 20 ms apart; then the stream ends (as with `until`).
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.flushHeaders();
        const event = (owner: string) => `${JSON.stringify({ Type: 'container', Action: 'start', Actor: { ID: `c-${owner}`, Attributes: { 'dockward.owner': owner } } })}\n`;
        setTimeout(() => res.write(event('bob')), 20);
        setTimeout(() => res.write(event('alice')), 40);
        setTimeout(() => res.end(), 60);
        return;
      }
      if (req.url?.includes('/wait')) {
        // Like dockerd: headers now, body when the container ends. `hold=1`: the body waits
        // until the test has seen the headers (releaseWait), so held headers deadlock the test.
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.flushHeaders();
        const end = () => res.end('{"StatusCode":0}');
        if (req.url.includes('hold=1')) {
          releaseWait = end;
          res.on('close', () => {
            if (!res.writableFinished) heldWaitCut = true;
          });
        }
        else setTimeout(end, 50);
        return;
      }
      res.writeHead(201, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ Id: 'abc', Warnings: [] }));
    });
  });
  daemon.on('upgrade', (req, socket) => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: '', httpVersion: req.httpVersion });
    socket.write('HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
    // `gone=1`: the container exits at once; dockerd closes the hijacked connection.
    if (req.url?.includes('gone=1')) {
      socket.destroy();
      return;
    }
    // An echo: what the client sends comes back, and the client's half-close ends the session.
    socket.on('data', (c) => socket.write(c));
    socket.on('end', () => socket.end());
  });
  return new Promise((resolve) => daemon!.listen(sock, resolve));
}
function stopDaemon(): Promise<void> {
  return new Promise((resolve) => {
    daemon!.close(() => resolve());
    daemon!.closeAllConnections();
    rmSync(sock, { force: true });
  });
}

let gw: RunningGateway;
beforeAll(async () => {
  writeFileSync(path.join(dir, 'secret'), SECRET);
  writeFileSync(path.join(dir, 'policy.yaml'), `rules:
  - name: everyone-reads
    effect: allow
    subjects: ["*"]
    actions: [system.ping, container.list, container.wait]
  - name: dev-creates
    effect: allow
    subjects: ["group:dev"]
    actions: [container.create, container.update, container.attach, exec.start, container.archive.put, container.export]
  - name: dev-lists-own-images
    effect: allow
    subjects: ["group:dev"]
    actions: [image.list]
    when:
      target.owner: "\${subject.name}"
  - name: dev-sees-own-events
    effect: allow
    subjects: ["group:dev"]
    actions: [system.events]
    when:
      target.owner: "\${subject.name}"
  - name: qa-lists-running-only
    effect: deny
    subjects: ["group:qa"]
    actions: [container.list]
    when:
      query.all: "1"
`);
  writeFileSync(path.join(dir, 'dockward.yaml'), `listen: 127.0.0.1:0
upstream: unix://${sock}
auth: { jwt: { algorithms: [HS256], secretFile: ${dir}/secret } }
policies: [${dir}/policy.yaml]
metrics: { listen: 127.0.0.1:0 }
audit: { file: ${dir}/audit.log }
`);
  await startDaemon();
});
afterAll(async () => {
  await stopDaemon().catch(() => {});
});

function request(method: string, p: string, opts: { token?: string; body?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  const [host, port] = gw.listen.split(':');
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port: Number(port), method, path: p, headers: { ...(opts.token ? { Authorization: `Bearer ${opts.token}` } : {}), ...opts.headers } }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** A raw upgrade like the docker CLI's attach; resolves with everything read until the gateway closes. */
function upgrade(p: string, tok: string | undefined, send: string): Promise<string> {
  const [host, port] = gw.listen.split(':');
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port: Number(port), allowHalfOpen: true }, () => {
      s.write(`POST ${p} HTTP/1.1\r\nHost: docker\r\n${tok ? `Authorization: Bearer ${tok}\r\n` : ''}Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n`);
    });
    let got = '';
    s.on('data', (c) => {
      got += c;
      if (got.includes('101 UPGRADED') && send) {
        s.end(send);
        send = '';
      }
    });
    s.on('end', () => resolve(got));
    s.on('error', reject);
  });
}

// Every upstream client relays the same bytes with the same rules.
describe.each(['direct', 'http-proxy', 'relay'])('gateway (upstreamClient: %s) against a scripted daemon', (client) => {
  beforeAll(async () => {
    const file = path.join(dir, `dockward-${client}.yaml`);
    writeFileSync(file, `${readFileSync(path.join(dir, 'dockward.yaml'), 'utf8')}upstreamClient: ${client}\n`);
    gw = await startGateway(file, {}, createLogger('silent'));
  });
  afterAll(async () => {
    await gw?.stop(0);
  });

  it('never passes the Authorization header to the daemon, on plain and upgraded requests', async () => {
    seen = [];
    const t = token('alice', ['dev']);
    expect((await request('GET', '/v1.41/containers/json', { token: t })).status).toBe(200);
    expect(await upgrade('/v1.41/containers/abc/attach?stream=1&stdin=1', t, 'hi\n')).toMatch(/101 UPGRADED[^]*hi\n$/);
    expect(seen.map((s) => s.url)).toEqual(['/v1.41/containers/json', '/v1.41/containers/abc/attach?stream=1&stdin=1']);
    for (const s of seen) expect(s.headers.authorization).toBeUndefined();
  });

  it('authenticates and authorises an upgrade exactly like a plain request', async () => {
    seen = [];
    expect(await upgrade('/v1.41/containers/abc/attach?stream=1', undefined, '')).toMatch(/^HTTP\/1\.1 401[^]*"message":"dockward: authentication required/);
    const denied = await upgrade('/v1.41/containers/abc/attach?stream=1', token('bob', ['qa']), '');
    expect(denied).toMatch(/^HTTP\/1\.1 403[^]*dockward: denied by rule default-deny/);
    const plain = await request('POST', '/v1.41/containers/abc/attach?stream=1', { token: token('bob', ['qa']) });
    expect(plain.status).toBe(403);
    expect(JSON.parse(plain.body).message).toBe(denied.slice(denied.indexOf('{')).replace(/^\{"message":"|"\}$/g, ''));
    expect(seen).toEqual([]);
  });

  it('flushes response headers before the body, so docker run can send start while wait is pending', async () => {
    const [host, port] = gw.listen.split(':');
    releaseWait = undefined;
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host, port: Number(port), method: 'POST', path: '/v1.41/containers/abc/wait?hold=1', headers: { Authorization: `Bearer ${token('alice', ['dev'])}` } }, (res) => {
        // The daemon has not sent the body yet: it only does once we got here.
        expect(releaseWait).toBeDefined();
        let b = '';
        res.on('data', (c) => (b += c));
        res.on('end', () => resolve(b));
        releaseWait!();
      });
      req.on('error', reject);
      req.end();
    });
    expect(body).toBe('{"StatusCode":0}');
  });

  it('ends a streamed answer, and the daemon-side request, when the client hangs up mid-stream', async () => {
    const [host, port] = gw.listen.split(':');
    releaseWait = undefined;
    heldWaitCut = false;
    const s = net.connect({ host, port: Number(port), allowHalfOpen: true });
    s.on('error', () => {});
    s.write(`POST /v1.41/containers/abc/wait?hold=1 HTTP/1.1\r\nHost: d\r\nAuthorization: Bearer ${token('alice', ['dev'])}\r\n\r\n`);
    let got = '';
    await new Promise<void>((resolve) => {
      s.on('data', (c) => {
        got += c;
        if (got.includes('\r\n\r\n')) resolve();
      });
    });
    // Like a killed `docker logs -f`: the client's FIN, while the daemon still holds the body.
    s.end();
    await new Promise<void>((resolve) => s.on('close', () => resolve()));
    await new Promise<void>((resolve) => {
      const t = setInterval(() => {
        if (heldWaitCut) {
          clearInterval(t);
          resolve();
        }
      }, 10);
    });
    expect(got).toMatch(/^HTTP\/1\.1 200/);
    expect(got).not.toContain('StatusCode');
  });

  it('forwards the inspected JSON body byte for byte', async () => {
    seen = [];
    const body = '{"Memory":  1073741824, "CpuShares":512, "Note":"\\u00e9"}';
    const r = await request('POST', '/v1.41/containers/abc/update', { token: token('alice', ['dev']), body, headers: { 'Content-Type': 'application/json' } });
    expect(r.status).toBe(201);
    expect(seen[0]!.body).toBe(body);
  });

  it('forwards a create body as checked plus exactly the ownership labels, spoofed values overwritten', async () => {
    seen = [];
    const body = { Image: 'busybox:local', Cmd: ['echo', 'é'], labels: { app: 'web', 'dockward.owner': 'bob', 'dockward.team': 'qa' } };
    const r = await request('POST', '/v1.41/containers/create', { token: token('alice', ['dev', 'ops']), body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
    expect(r.status).toBe(201);
    // The client's own spelling of the key is kept: dockerd would merge a second spelling.
    expect(JSON.parse(seen[0]!.body)).toEqual({ ...body, labels: { app: 'web', 'dockward.owner': 'alice', 'dockward.team': 'dev' } });
  });

  it.each([
    ['an ambiguous body', '{"Image":"a","image":"b"}', 400, /appears twice/],
    ['a form body', 'Image=a', 400, /form-encoded/],
  ])('refuses %s before it reaches the daemon', async (_n, body, status, msg) => {
    seen = [];
    const ct = body.startsWith('{') ? 'application/json' : 'application/x-www-form-urlencoded';
    const r = await request('POST', '/v1.41/containers/create', { token: token('alice', ['dev']), body, headers: { 'Content-Type': ct } });
    expect(r.status).toBe(status);
    expect(JSON.parse(r.body).message).toMatch(msg);
    expect(seen).toEqual([]);
  });

  it('refuses a transfer coding other than chunked before it reaches the daemon', async () => {
    seen = [];
    const [host, port] = gw.listen.split(':');
    const answer = await new Promise<string>((resolve, reject) => {
      const s = net.connect({ host, port: Number(port) }, () => {
        s.end(`POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nAuthorization: Bearer ${token('alice', ['dev'])}\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`);
      });
      let got = '';
      s.on('data', (c) => (got += c));
      s.on('end', () => resolve(got));
      s.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400[^]*Transfer-Encoding \\"gzip, chunked\\" is refused/);
    expect(seen).toEqual([]);
  });

  /** Writes raw bytes to the gateway and reads until it closes the connection. */
  function raw(bytes: string): Promise<string> {
    const [host, port] = gw.listen.split(':');
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port: Number(port) }, () => s.write(bytes));
      let got = '';
      s.on('data', (c) => (got += c));
      s.on('end', () => resolve(got));
      s.on('error', reject);
    });
  }

  it.each([
    ['Content-Length with chunked', 'Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n'],
    ['two different Content-Lengths', 'Content-Length: 2\r\nContent-Length: 3\r\n\r\n{} '],
    ['a folded header', 'Content-Length: 2\r\nX-A: a\r\n b\r\n\r\n{}'],
  ])('refuses ambiguous framing (%s) before it reaches the daemon', async (_n, rest) => {
    seen = [];
    const answer = await raw(`POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nAuthorization: Bearer ${token('alice', ['dev'])}\r\nContent-Type: application/json\r\n${rest}`);
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
    expect(seen).toEqual([]);
  });

  it('sends a bodyless POST without Content-Length as an empty body, not as chunked (dockerd refuses a start with a body)', async () => {
    seen = [];
    const answer = await raw(`POST /v1.41/containers/abc/wait HTTP/1.1\r\nHost: d\r\nAuthorization: Bearer ${token('alice', ['dev'])}\r\nConnection: close\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    expect(seen[0]!.headers['transfer-encoding']).toBeUndefined();
    expect(seen[0]!.body).toBe('');
  });

  it('refuses an absolute-form target', async () => {
    seen = [];
    const answer = await raw(`GET http://evil/v1.41/containers/json HTTP/1.1\r\nHost: d\r\nAuthorization: Bearer ${token('alice', ['dev'])}\r\nConnection: close\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
    expect(seen).toEqual([]);
  });

  it('authorises every request of a pipelined keep-alive connection on its own', async () => {
    seen = [];
    const t = token('bob', ['qa']);
    const answer = await raw(
      `GET /v1.41/containers/json HTTP/1.1\r\nHost: d\r\nAuthorization: Bearer ${t}\r\n\r\n` +
        `POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nAuthorization: Bearer ${t}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}` +
        `GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n`,
    );
    const statuses = [...answer.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]);
    // Allowed list; create denied to qa; a ping without credentials refused.
    expect(statuses).toEqual(['200', '403', '401']);
    expect(seen.map((x) => x.url)).toEqual(['/v1.41/containers/json']);
  });

  it('streams a chunked upload to the daemon as the same bytes, re-framed, and reads the next request after it', async () => {
    seen = [];
    const t = token('alice', ['dev']);
    const answer = await raw(
      `PUT /v1.41/containers/abc/archive?path=/tmp HTTP/1.1\r\nHost: d\r\nAuthorization: Bearer ${t}\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n` +
        `5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n` +
        `PUT /v1.41/containers/abc/archive?path=/x HTTP/1.1\r\nHost: d\r\nAuthorization: Bearer ${t}\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc`,
    );
    expect([...answer.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1])).toEqual(['201', '201']);
    expect(seen.map((x) => [x.url, x.body])).toEqual([
      ['/v1.41/containers/abc/archive?path=/tmp', 'hello world'],
      ['/v1.41/containers/abc/archive?path=/x', 'abc'],
    ]);
  });

  it('relays uploads, downloads and an attach session byte for byte, all at once, with slow readers', async () => {
    // The relay reads streamed bytes into reused buffers (relay/pool.ts): a buffer reused while
    // a write still held it would put other bytes on the wire. Queues build up here (three
    // transfers at once, readers that stop), so such a reuse would show in a digest.
    const [host, port] = gw.listen.split(':');
    const t = token('alice', ['dev']);
    const want = sha256(PAYLOAD);
    const upload = (chunked: boolean) =>
      new Promise<{ bytes: number; sha256: string }>((resolve, reject) => {
        const req = http.request(
          { host, port: Number(port), method: 'PUT', path: '/v1.41/containers/abc/archive?path=/tmp&digest=1', headers: { Authorization: `Bearer ${t}`, 'Content-Type': 'application/x-tar', ...(chunked ? {} : { 'Content-Length': String(PAYLOAD.length) }) } },
          (res) => {
            let b = '';
            res.on('data', (c) => (b += c));
            res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(b)) : reject(new Error(`upload: ${res.statusCode} ${b}`))));
          },
        );
        req.on('error', reject);
        // In uneven pieces, so reads straddle them.
        for (let off = 0; off < PAYLOAD.length; ) {
          const n = 1 + ((off * 7919) % (300 * 1024));
          req.write(PAYLOAD.subarray(off, off + n));
          off += n;
        }
        req.end();
      });
    const download = (sized: boolean) =>
      new Promise<string>((resolve, reject) => {
        http
          .get({ host, port: Number(port), path: `/v1.41/containers/abc/export${sized ? '?sized=1' : ''}`, headers: { Authorization: `Bearer ${t}` } }, (res) => {
            const got: Buffer[] = [];
            let n = 0;
            res.on('data', (c: Buffer) => {
              got.push(c);
              // A reader that stops now and then: the gateway's queue towards it fills.
              if (++n % 40 === 0) {
                res.pause();
                setTimeout(() => res.resume(), 30);
              }
            });
            res.on('end', () => (res.statusCode === 200 ? resolve(sha256(got)) : reject(new Error(`download: ${res.statusCode}`))));
          })
          .on('error', reject);
      });
    const session = () =>
      new Promise<string>((resolve, reject) => {
        const s = net.connect({ host, port: Number(port), allowHalfOpen: true }, () => {
          s.write(`POST /v1.41/containers/abc/attach?stream=1&stdin=1 HTTP/1.1\r\nHost: d\r\nAuthorization: Bearer ${t}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`);
        });
        let head = Buffer.alloc(0);
        const echoed: Buffer[] = [];
        s.on('data', (c: Buffer) => {
          if (echoed.length === 0 && head.indexOf('\r\n\r\n') < 0) {
            head = Buffer.concat([head, c]);
            const end = head.indexOf('\r\n\r\n');
            if (end < 0) return;
            expect(head.toString('latin1')).toMatch(/^HTTP\/1\.1 101 /);
            const rest = head.subarray(end + 4);
            head = Buffer.from('\r\n\r\n');
            echoed.push(rest);
            s.end(PAYLOAD.subarray(0, 8 * 1024 * 1024));
            return;
          }
          echoed.push(c);
        });
        s.on('end', () => resolve(sha256(echoed)));
        s.on('error', reject);
      });
    const [upSized, upChunked, downSized, downChunked, echoed] = await Promise.all([upload(false), upload(true), download(true), download(false), session()]);
    expect(upSized).toEqual({ bytes: PAYLOAD.length, sha256: want });
    expect(upChunked).toEqual({ bytes: PAYLOAD.length, sha256: want });
    expect(downSized).toBe(want);
    expect(downChunked).toBe(want);
    expect(echoed).toBe(sha256(PAYLOAD.subarray(0, 8 * 1024 * 1024)));
  });

  it('keeps each answer\'s bytes until they are written, when the kernel takes them late', async () => {
    // The relay reads an answer's head, and the body that comes with it, into a pooled buffer
    // and writes it without a copy: the buffer must stay that answer's until Node reports the
    // write done. Here the writes to two clients reach their sockets 30 ms late (as to clients
    // that read slowly) while two other connections' answers are read, back to back, into
    // whatever buffers the pool has free. A buffer reused too early shows in a digest. The slow
    // clients get a chunked answer whose first piece comes with its head, and a sized one after
    // which the daemon ends its connection (that connection's next buffer goes back at once); a
    // third, an HTTP/1.0 export relayed until the daemon closes.
    const slowPorts = new Set<number>();
    const proto = net.Socket.prototype as unknown as Record<'write' | 'end', (...a: unknown[]) => unknown>;
    const original = { write: proto.write, end: proto.end };
    const queues = new WeakMap<net.Socket, (() => void)[]>();
    // Writes (and the end after them) reach the socket 30 ms late, in order.
    const later = (socket: net.Socket, call: () => void): void => {
      let q = queues.get(socket);
      if (!q) {
        q = [];
        queues.set(socket, q);
        setTimeout(() => {
          queues.delete(socket);
          for (const c of q!) if (!socket.destroyed) c();
        }, 30);
      }
      q.push(call);
    };
    const slow = (socket: net.Socket) => socket.remotePort !== undefined && slowPorts.has(socket.remotePort) && socket.localPort !== socket.remotePort;
    proto.write = function (this: net.Socket, ...args: unknown[]) {
      if (!slow(this)) return original.write.apply(this, args);
      later(this, () => original.write.apply(this, args));
      return true;
    };
    proto.end = function (this: net.Socket, ...args: unknown[]) {
      if (!slow(this) || !queues.has(this)) return original.end.apply(this, args);
      later(this, () => original.end.apply(this, args));
      return this;
    };
    const [host, port] = gw.listen.split(':');
    const t = token('alice', ['dev']);
    const want = sha256(LIST);
    const client = async (query: string, slow: boolean, times: number) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (let i = 0; i < times; i++) {
          const r = await new Promise<Buffer>((resolve, reject) => {
            const req = http.get({ host, port: Number(port), agent, path: `/v1.41/containers/json?${query}`, headers: { Authorization: `Bearer ${t}` } }, (res) => {
              const parts: Buffer[] = [];
              res.on('data', (c: Buffer) => parts.push(c));
              res.on('end', () => resolve(Buffer.concat(parts)));
            });
            req.on('error', reject);
            // The gateway's side of a slow client's connection is the one written late.
            if (slow) req.on('socket', (sk) => (sk.localPort ? slowPorts.add(sk.localPort) : sk.once('connect', () => slowPorts.add(sk.localPort!))));
          });
          expect(sha256(r)).toBe(want);
        }
      } finally {
        agent.destroy();
      }
    };
    // HTTP/1.0: the daemon answers without framing and closes, so the body is relayed until close
    // (an export: reads big enough to be pooled).
    const untilClose = async (times: number) => {
      for (let i = 0; i < times; i++) {
        const r = await new Promise<Buffer>((resolve, reject) => {
          const s = net.connect({ host, port: Number(port) }, () => {
            slowPorts.add(s.localPort!);
            s.write(`GET /v1.41/containers/abc/export HTTP/1.0\r\nHost: d\r\nAuthorization: Bearer ${t}\r\n\r\n`);
          });
          const parts: Buffer[] = [];
          s.on('data', (c: Buffer) => parts.push(c));
          s.on('end', () => resolve(Buffer.concat(parts)));
          s.on('error', reject);
        });
        const headEnd = r.indexOf('\r\n\r\n');
        expect(r.toString('latin1', 0, headEnd)).toMatch(/^HTTP\/1\.[01] 200 /);
        expect(r.toString('latin1', 0, headEnd)).not.toMatch(/content-length|transfer-encoding/i);
        expect(sha256(r.subarray(headEnd + 4))).toBe(sha256(PAYLOAD));
      }
    };
    try {
      // Sized answers that come whole with their head, chunked ones and close-delimited ones that come in pieces.
      await Promise.all([client('pieces=1', true, 15), client('big=1&close=1', true, 15), untilClose(2), client('big=1', false, 300), client('big=1', false, 300)]);
    } finally {
      proto.write = original.write;
      proto.end = original.end;
    }
  });

  it('refuses a malformed chunked upload without passing a request the gateway did not read to the daemon', async () => {
    seen = [];
    const t = token('alice', ['dev']);
    // A chunk size that is not hex: whatever follows must not be read as a second request.
    const answer = await raw(
      `PUT /v1.41/containers/abc/archive?path=/tmp HTTP/1.1\r\nHost: d\r\nAuthorization: Bearer ${t}\r\nTransfer-Encoding: chunked\r\n\r\n` +
        `zz\r\nGET /v1.41/containers/json HTTP/1.1\r\nHost: d\r\n\r\n`,
    );
    // The gateway's own refusal: the scripted daemon (Node's strict parser) would refuse the
    // bad chunk too, so its not seeing the second request alone would prove nothing.
    expect(answer).toMatch(/^HTTP\/1\.1 400 [^]*\{"message":"dockward: (malformed HTTP request|malformed chunked body)/);
    expect(seen.map((x) => x.url)).not.toContain('/v1.41/containers/json');
  });

  it('answers Expect: 100-continue, then reads and checks the body', async () => {
    seen = [];
    const [host, port] = gw.listen.split(':');
    const body = '{"Image":"busybox:local"}';
    const answer = await new Promise<string>((resolve, reject) => {
      const s = net.connect({ host, port: Number(port) }, () => {
        s.write(`POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nAuthorization: Bearer ${token('alice', ['dev'])}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`);
      });
      let got = '';
      let sent = false;
      s.on('data', (c) => {
        got += c;
        // The body goes only after the go-ahead, as curl and Go's client do.
        if (!sent && got.includes('100 Continue\r\n\r\n')) {
          sent = true;
          s.write(body);
        }
      });
      s.on('end', () => resolve(got));
      s.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201 /);
    expect(seen).toHaveLength(1);
    expect(JSON.parse(seen[0]!.body)).toEqual({ Image: 'busybox:local', Labels: { 'dockward.owner': 'alice', 'dockward.team': 'dev' } });
  });

  it('answers an HTTP/1.0 request and closes the connection', async () => {
    const answer = await raw(`GET /_ping HTTP/1.0\r\nHost: d\r\nAuthorization: Bearer ${token('alice', ['dev'])}\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.[01] 200 [^]*\r\n\r\nOK$/);
  });

  it('answers an HTTP/1.0 request that has no Host header (HTTP/1.0 does not require one)', async () => {
    const answer = await raw(`GET /_ping HTTP/1.0\r\nAuthorization: Bearer ${token('alice', ['dev'])}\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.[01] 200 [^]*\r\n\r\nOK$/);
  });

  it('hands the daemon a valid upgrade request for an HTTP/1.0 attach that has no Host header', async () => {
    seen = [];
    const answer = await raw(`POST /v1.41/containers/abc/attach?stream=1&gone=1 HTTP/1.0\r\nAuthorization: Bearer ${token('alice', ['dev'])}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 101 /);
    const [attach] = seen;
    // Node's test daemon upgrades without a Host; dockerd (Go) refuses an HTTP/1.1 request without
    // one. The relay forwards the request in its own version; the others send HTTP/1.1 with a Host.
    expect(attach?.url).toBe('/v1.41/containers/abc/attach?stream=1&gone=1');
    expect([attach!.httpVersion, attach!.headers.host]).toEqual(client === 'relay' ? ['1.0', undefined] : ['1.1', 'localhost']);
  });

  it('refuses an HTTP/1.1 request without Host, plain or upgrade, before it reaches the daemon (dockerd would refuse it too)', async () => {
    seen = [];
    const t = token('alice', ['dev']);
    const plain = await raw(`GET /v1.41/containers/json HTTP/1.1\r\nAuthorization: Bearer ${t}\r\nConnection: close\r\n\r\n`);
    expect(plain).toMatch(/^HTTP\/1\.1 400 /);
    const up = await raw(`POST /v1.41/containers/abc/attach?stream=1 HTTP/1.1\r\nAuthorization: Bearer ${t}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`);
    expect(up).toMatch(/^HTTP\/1\.1 400 [^]*"message":"dockward: malformed HTTP request: missing required Host header"/);
    expect(seen).toEqual([]);
  });

  it('filters the events stream for the caller', async () => {
    const r = await request('GET', '/v1.41/events', { token: token('alice', ['dev']) });
    expect(r.status).toBe(200);
    expect(r.body.split('\n').filter(Boolean).map((l) => JSON.parse(l).Actor.ID)).toEqual(['c-alice']);
  });

  it('sends a filtered events stream to an HTTP/1.0 client without chunked framing, which HTTP/1.0 does not have', async () => {
    const answer = await raw(`GET /v1.41/events HTTP/1.0\r\nHost: d\r\nAuthorization: Bearer ${token('alice', ['dev'])}\r\n\r\n`);
    const [head, body] = answer.split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.[01] 200 /);
    expect(head).not.toMatch(/transfer-encoding/i);
    // Close-delimited: the body is the kept event line and nothing else.
    expect(body!.split('\n').filter(Boolean).map((l) => JSON.parse(l).Actor.ID)).toEqual(['c-alice']);
  });

  it('keeps serving when the daemon closes a hijacked session while the client still writes', async () => {
    const [host, port] = gw.listen.split(':');
    const s = net.connect({ host, port: Number(port), allowHalfOpen: true });
    s.on('error', () => {});
    s.write(`POST /v1.41/containers/abc/attach?stream=1&stdin=1&gone=1 HTTP/1.1\r\nHost: d\r\nAuthorization: Bearer ${token('alice', ['dev'])}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`);
    let got = '';
    s.on('data', (c) => (got += c));
    // Like `yes | docker exec -i c true`: stdin keeps coming after the session is over.
    for (let i = 0; i < 20 && !s.destroyed; i++) {
      s.write('stdin '.repeat(1000));
      await new Promise((r) => setTimeout(r, 20));
    }
    s.destroy();
    expect(got).toMatch(/^HTTP\/1\.1 101 /);
    expect(await request('GET', '/_ping', { token: token('alice', ['dev']) })).toMatchObject({ status: 200, body: 'OK' });
  });

  it('stops reading pipelined requests from a client that does not read the answers', async () => {
    const [host, port] = gw.listen.split(':');
    const s = net.connect({ host, port: Number(port) });
    s.on('error', () => {});
    s.pause();
    await new Promise((r) => s.once('connect', r));
    // Unauthenticated pings: each is refused with a 401 the client never reads.
    const burst = Buffer.from('GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n'.repeat(2000));
    let sent = 0;
    let stalled = false;
    while (sent < 200 * 1024 * 1024) {
      sent += burst.length;
      if (!s.write(burst)) {
        const drained = await Promise.race([new Promise((r) => s.once('drain', () => r(true))), new Promise((r) => setTimeout(() => r(false), 3000))]);
        if (!drained) {
          stalled = true;
          break;
        }
      }
    }
    s.destroy();
    // The answers would otherwise pile up in the gateway's memory (~25 bytes per byte sent).
    // What stays unread is only what the kernel's socket buffers hold (~4 MB on loopback here).
    expect(stalled).toBe(true);
    expect(sent).toBeLessThan(12 * 1024 * 1024);
  }, 30_000);

  it('releases a connection it closed even when the client never closes its side', async () => {
    const [host, port] = gw.listen.split(':');
    const s = net.connect({ host, port: Number(port), allowHalfOpen: true });
    let got = '';
    s.on('data', (c) => (got += c));
    const ended = new Promise((r) => s.once('end', r));
    s.write('GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n');
    await ended;
    expect(got).toMatch(/^HTTP\/1\.1 401 /);
    // The client keeps its half open. Once the gateway has let go, a write is answered by a reset.
    const failed = new Promise<boolean>((resolve) => {
      s.once('error', () => resolve(true));
      s.once('close', () => resolve(true));
    });
    // (Quiet first: a client that keeps sending is read, and dropped, for longer.)
    await new Promise((r) => setTimeout(r, 7_000));
    const probe = setInterval(() => s.write('x'), 200);
    const released = await Promise.race([failed, new Promise((r) => setTimeout(() => r(false), 3_000))]);
    clearInterval(probe);
    s.destroy();
    expect(released).toBe(true);
  }, 20_000);

  it('judges a query parameter given twice as indeterminate: a deny rule reading it applies', async () => {
    seen = [];
    const t = token('bob', ['qa']);
    expect((await request('GET', '/v1.41/containers/json?all=0', { token: t })).status).toBe(200);
    const twice = await request('GET', '/v1.41/containers/json?all=0&all=1', { token: t });
    expect(twice.status).toBe(403);
    expect(JSON.parse(twice.body).message).toBe('dockward: denied by rule qa-lists-running-only: query.all == "1", but query.all is given more than once (dockerd reads some parameters as lists)');
    expect(seen.map((x) => x.url)).toEqual(['/v1.41/containers/json?all=0']);
  });

  it('filters a list answer for the caller, and refuses one it cannot read rather than pass it on', async () => {
    const t = token('alice', ['dev']);
    const mine = await request('GET', '/v1.41/images/json', { token: t });
    expect(mine.status).toBe(200);
    expect(JSON.parse(mine.body).map((i: { Id: string }) => i.Id)).toEqual(['sha256:a']);
    expect(Number(mine.headers['content-length'])).toBe(Buffer.byteLength(mine.body));
    const unreadable = await request('GET', '/v1.41/images/json?bad=1', { token: t });
    expect(unreadable.status).toBe(502);
    expect(JSON.parse(unreadable.body).message).toBe('dockward: cannot read the list the daemon answered, so it cannot be filtered');
  });

  it('answers 413 for an inspected body over the limit', async () => {
    const big = JSON.stringify({ Image: 'a', Env: ['X=' + 'y'.repeat(1_100_000)] });
    const r = await request('POST', '/v1.41/containers/create', { token: token('alice', ['dev']), body: big, headers: { 'Content-Type': 'application/json' } });
    expect(r.status).toBe(413);
    expect(JSON.parse(r.body).message).toMatch(/limits\.inspectedBodyBytes/);
  });

  // The relay's own write batching (the other upstream clients write through Node's http).
  if (client === 'relay') {
    /** The unix sockets of this process (the in-process gateway's among them) by inode, with their send buffers. */
    const unixSendBuffers = (): Map<string, number> => {
      const unix = new Set(readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1).map((l) => l.trim().split(/\s+/)[6]));
      const found = new Map<string, number>();
      for (const fd of readdirSync('/proc/self/fd')) {
        const inode = /^socket:\[(\d+)\]$/.exec(readlinkOr(`/proc/self/fd/${fd}`))?.[1];
        const bytes = inode !== undefined && unix.has(inode) ? sendBufferBytes(Number(fd)) : undefined;
        if (bytes !== undefined) found.set(inode!, bytes);
      }
      return found;
    };
    /** What a unix socket gets from the kernel by default, read from one of our own. */
    const defaultSendBuffer = async (): Promise<number> => {
      const probe = path.join(dir, 'probe.sock');
      const server = net.createServer((c) => c.destroy());
      await new Promise<void>((r) => server.listen(probe, r));
      const c = net.connect(probe);
      const bytes = sendBufferOf(c)!;
      c.destroy();
      await new Promise((r) => server.close(r));
      return bytes;
    };
    /** A keep-alive connection to the gateway: each call sends one request and reads its answer. */
    const keptAlive = (g: RunningGateway) => {
      const [host, port] = g.listen.split(':');
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const send = (method: string, p: string, body?: Buffer) =>
        new Promise<number>((resolve, reject) => {
          const req = http.request({ host, port: Number(port), agent, method, path: p, headers: { Authorization: `Bearer ${token('alice', ['dev'])}`, ...(body ? { 'Content-Type': 'application/x-tar' } : {}) } }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode!));
          });
          req.on('error', reject);
          req.end(body);
        });
      return { send, close: () => agent.destroy() };
    };

    it('gives a daemon connection a wide send buffer when an upload goes through it, and only then', async () => {
      // The gateway runs in this process: its daemon connections are among this process's unix sockets.
      const normal = await defaultSendBuffer();
      const wideNow = () => new Set([...unixSendBuffers()].filter(([, b]) => b > normal).map(([inode]) => inode));
      const before = wideNow();
      const c = keptAlive(gw);
      try {
        expect(await c.send('GET', '/_ping')).toBe(200);
        // A bodyless request leaves its daemon connection as the kernel made it.
        expect([...wideNow()].filter((i) => !before.has(i))).toEqual([]);
        expect(await c.send('PUT', '/v1.41/containers/abc/archive?path=/tmp&digest=1', PAYLOAD.subarray(0, 1024 * 1024))).toBe(200);
        // The same kept-alive daemon connection, now wide (the gateway asked for 2 MiB; the kernel keeps twice that, within its cap).
        const widened = [...unixSendBuffers()].filter(([i, b]) => b > normal && !before.has(i)).map(([, b]) => b);
        expect(widened).toHaveLength(1);
        expect(widened[0]).toBeLessThanOrEqual(2 * UPSTREAM_SEND_BUFFER_BYTES);
      } finally {
        c.close();
      }
      // A connection whose first request is an upload: its daemon connection is widened while it connects.
      const before2 = wideNow();
      const d = keptAlive(gw);
      try {
        expect(await d.send('PUT', '/v1.41/containers/abc/archive?path=/tmp&digest=1', PAYLOAD.subarray(0, 1024 * 1024))).toBe(200);
        expect([...wideNow()].filter((i) => !before2.has(i))).toHaveLength(1);
      } finally {
        d.close();
      }
    });

    it('logs once, at the first upload, the send buffer the kernel kept', async () => {
      const lines: Record<string, unknown>[] = [];
      const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
      const own = await startGateway(path.join(dir, 'dockward-relay.yaml'), {}, log);
      const about = () => lines.filter((l) => /send buffer/.test(String(l.msg)));
      const c = keptAlive(own);
      try {
        expect(await c.send('GET', '/_ping')).toBe(200);
        expect(about()).toEqual([]);
        for (let i = 0; i < 2; i++) expect(await c.send('PUT', '/v1.41/containers/abc/archive?path=/tmp&digest=1', PAYLOAD.subarray(0, 64 * 1024))).toBe(200);
        const [line, ...more] = about();
        expect(more).toEqual([]);
        expect(line!.bytes).toBeGreaterThan(await defaultSendBuffer());
        // Information when the kernel kept the whole 4 MiB, a warning that names the cap otherwise.
        expect(line!.level).toBe((line!.bytes as number) >= 2 * UPSTREAM_SEND_BUFFER_BYTES ? 30 : 40);
      } finally {
        c.close();
        await own.stop(0);
      }
    });

    it('writes an answer\'s piece at once when its read was the daemon socket\'s last of the turn, and batches full reads', async () => {
      // Deferring a write to the end of the turn (setImmediate) only pays when more reads of the
      // same socket follow in that turn, and libuv stops at a short read: a `wait` answer (head,
      // then its body 50 ms later: two short reads) goes out without any deferred write, while an
      // export read 64 KiB at a time is still batched.
      const original = globalThis.setImmediate;
      let deferred = 0;
      const spy = vi.spyOn(globalThis, 'setImmediate').mockImplementation(((fn: (...a: unknown[]) => void, ...args: unknown[]) => {
        if (new Error().stack?.includes('relay/server')) deferred++;
        return original(fn, ...args);
      }) as typeof setImmediate);
      try {
        const t = token('alice', ['dev']);
        expect(await request('POST', '/v1.41/containers/abc/wait', { token: t })).toMatchObject({ status: 200, body: '{"StatusCode":0}' });
        expect(deferred).toBe(0);
        const [host, port] = gw.listen.split(':');
        const digest = await new Promise<string>((resolve, reject) => {
          http
            .get({ host, port: Number(port), path: '/v1.41/containers/abc/export', headers: { Authorization: `Bearer ${t}` } }, (res) => {
              const h = createHash('sha256');
              res.on('data', (c: Buffer) => h.update(c));
              res.on('end', () => resolve(h.digest('hex')));
            })
            .on('error', reject);
        });
        expect(digest).toBe(sha256(PAYLOAD));
        expect(deferred).toBeGreaterThan(0);
      } finally {
        spy.mockRestore();
      }
    });
  }

  it('answers 502 in Docker error shape while the daemon is down, and serves again when it is back', async () => {
    const t = token('alice', ['dev']);
    await stopDaemon();
    const down = await request('GET', '/_ping', { token: t });
    expect(down.status).toBe(502);
    expect(JSON.parse(down.body).message).toMatch(/^dockward: the Docker daemon is unreachable/);
    const downUpgrade = await upgrade('/v1.41/containers/abc/attach', t, '');
    expect(downUpgrade).toMatch(/^HTTP\/1\.1 502/);
    await startDaemon();
    const up = await request('GET', '/_ping', { token: t });
    expect(up).toMatchObject({ status: 200, body: 'OK' });
  });
});
