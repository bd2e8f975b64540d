/**
 * A deliberately small HTTP/1.1 keep-alive client for the benchmark.
 *
 * Why not node:http: on this 2-core machine the client shares the CPU with the gateway and the
 * daemon, so every microsecond the client spends is taken from what is being measured. node:http
 * (agent, IncomingMessage, header objects, stream machinery) costs several times more per request
 * than writing a prebuilt request head and scanning the answer for its end. This client does only
 * that: one outstanding request per connection (no pipelining, like the docker CLI), status code,
 * Content-Length / chunked / read-until-close bodies, bodies counted and dropped unless asked for.
 * The bench reports its own CPU per request, so a reader can check it is not the bottleneck.
 */
import net from 'node:net';

export type Address = { readonly kind: 'unix'; readonly path: string } | { readonly kind: 'tcp'; readonly host: string; readonly port: number };

/** Something the bench measures: the daemon's socket, the gateway, a peer proxy. */
export interface Endpoint {
  /** Column name in the report: `direct`, `dockward`, `haproxy`. */
  readonly name: string;
  readonly address: Address;
  /** Extra request header lines, each ending in \r\n (the gateway's Authorization). */
  readonly headerLines: string;
  /** The process doing the relaying, for CPU and RSS; undefined for the daemon itself. */
  readonly pid?: number;
}

export interface Response {
  readonly status: number;
  /** Body bytes received (after de-chunking). */
  readonly bytes: number;
  /** The body, only when the request asked to collect it. */
  readonly body?: Buffer;
}

export class HttpError extends Error {}

const CRLFCRLF = Buffer.from('\r\n\r\n');

const enum State {
  Idle,
  Head,
  Length,
  ChunkSize,
  ChunkData,
  ChunkDataEnd,
  Trailer,
  UntilClose,
}

interface Pending {
  resolve(r: Response): void;
  reject(e: Error): void;
  collect: boolean;
  noBody: boolean;
  startedMs: number;
  timeoutMs: number;
  onFirstByte?: () => void;
}

/** Connections with a request in flight, for the one watchdog that enforces request timeouts. */
const live = new Set<Conn>();
let watchdog: NodeJS.Timeout | undefined;

function ensureWatchdog(): void {
  if (watchdog) return;
  // One timer for all connections: a timer per request would cost the client more than the
  // request parsing does.
  watchdog = setInterval(() => {
    const now = performance.now();
    for (const c of live) c.checkTimeout(now);
    if (live.size === 0 && watchdog) {
      clearInterval(watchdog);
      watchdog = undefined;
    }
  }, 250);
  watchdog.unref();
}

export function connectSocket(address: Address): net.Socket {
  const s = address.kind === 'unix' ? net.connect(address.path) : net.connect(address.port, address.host);
  s.setNoDelay(true);
  return s;
}

export class Conn {
  readonly socket: net.Socket;
  private state = State.Idle;
  private pending: Pending | undefined;
  private head: Buffer | undefined;
  private remaining = 0;
  private status = 0;
  private bytes = 0;
  private parts: Buffer[] = [];
  private line = '';
  private closeAfter = false;
  private dead: Error | undefined;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (b: Buffer) => this.onData(b));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.onClose());
  }

  static open(address: Address, timeoutMs = 10_000): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const s = connectSocket(address);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new HttpError(`connect to ${describe(address)} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(new HttpError(`connect to ${describe(address)}: ${e.message}`));
      });
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(new Conn(s));
      });
    });
  }

  get usable(): boolean {
    return this.dead === undefined && !this.closeAfter && this.state === State.Idle;
  }

  /**
   * Sends a prebuilt request (head, and body if any) and resolves with the response.
   * `noBody`: the answer to a HEAD request has no body whatever its headers say.
   */
  send(
    request: Buffer | readonly Buffer[],
    opts: { collect?: boolean; noBody?: boolean; timeoutMs?: number; onFirstByte?: () => void } = {},
  ): Promise<Response> {
    if (this.dead) return Promise.reject(this.dead);
    if (this.state !== State.Idle) return Promise.reject(new HttpError('a request is already in flight on this connection'));
    return new Promise<Response>((resolve, reject) => {
      this.pending = {
        resolve,
        reject,
        collect: opts.collect ?? false,
        noBody: opts.noBody ?? false,
        startedMs: performance.now(),
        timeoutMs: opts.timeoutMs ?? 30_000,
        onFirstByte: opts.onFirstByte,
      };
      this.state = State.Head;
      this.head = undefined;
      this.bytes = 0;
      this.parts = [];
      this.closeAfter = false;
      live.add(this);
      ensureWatchdog();
      if (Buffer.isBuffer(request)) {
        this.socket.write(request);
      } else {
        for (const b of request as readonly Buffer[]) this.socket.write(b);
      }
    });
  }

  /** Writes more request body (a streamed upload); resolves when the socket can take more. */
  write(chunk: Buffer): Promise<void> {
    if (this.dead) return Promise.reject(this.dead);
    if (this.socket.write(chunk)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onDrain = () => {
        this.socket.off('close', onClose);
        resolve();
      };
      const onClose = () => {
        this.socket.off('drain', onDrain);
        reject(this.dead ?? new HttpError('connection closed during upload'));
      };
      this.socket.once('drain', onDrain);
      this.socket.once('close', onClose);
    });
  }

  close(): void {
    this.dead ??= new HttpError('connection closed by the client');
    this.socket.destroy();
  }

  checkTimeout(nowMs: number): void {
    const p = this.pending;
    if (p && nowMs - p.startedMs > p.timeoutMs) {
      this.fail(new HttpError(`no complete response within ${p.timeoutMs} ms`));
      this.socket.destroy();
    }
  }

  private fail(e: Error): void {
    this.dead ??= e;
    const p = this.pending;
    if (p) {
      this.pending = undefined;
      this.state = State.Idle;
      live.delete(this);
      p.reject(e);
    }
  }

  private onClose(): void {
    if (this.state === State.UntilClose) {
      this.finish();
    }
    this.fail(this.dead ?? new HttpError('connection closed by the server'));
  }

  private onData(buf: Buffer): void {
    const p = this.pending;
    if (!p) {
      // Bytes nobody asked for: the server is not speaking request/response any more.
      this.fail(new HttpError(`unexpected ${buf.length} bytes from the server while idle`));
      this.socket.destroy();
      return;
    }
    if (p.onFirstByte) {
      const f = p.onFirstByte;
      p.onFirstByte = undefined;
      f();
    }
    let off = 0;
    while (off < buf.length && this.pending) {
      switch (this.state) {
        case State.Head:
          off = this.readHead(buf, off);
          break;
        case State.Length: {
          const n = Math.min(this.remaining, buf.length - off);
          this.take(buf, off, n);
          off += n;
          this.remaining -= n;
          if (this.remaining === 0) this.finish();
          break;
        }
        case State.ChunkSize: {
          const nl = buf.indexOf(10, off);
          if (nl < 0) {
            this.line += buf.toString('latin1', off);
            if (this.line.length > 1024) this.protocolError('chunk size line too long');
            off = buf.length;
            break;
          }
          const text = (this.line + buf.toString('latin1', off, nl)).trim();
          this.line = '';
          off = nl + 1;
          const semi = text.indexOf(';');
          const size = parseInt(semi < 0 ? text : text.slice(0, semi), 16);
          if (!Number.isFinite(size) || size < 0) {
            this.protocolError(`bad chunk size ${JSON.stringify(text)}`);
            break;
          }
          if (size === 0) {
            this.state = State.Trailer;
          } else {
            this.remaining = size;
            this.state = State.ChunkData;
          }
          break;
        }
        case State.ChunkData: {
          const n = Math.min(this.remaining, buf.length - off);
          this.take(buf, off, n);
          off += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = State.ChunkDataEnd;
          break;
        }
        case State.ChunkDataEnd: {
          // The CRLF after a chunk's data.
          const nl = buf.indexOf(10, off);
          if (nl < 0) {
            off = buf.length;
          } else {
            off = nl + 1;
            this.state = State.ChunkSize;
          }
          break;
        }
        case State.Trailer: {
          const nl = buf.indexOf(10, off);
          if (nl < 0) {
            this.line += buf.toString('latin1', off);
            off = buf.length;
            break;
          }
          const text = (this.line + buf.toString('latin1', off, nl)).trim();
          this.line = '';
          off = nl + 1;
          if (text === '') this.finish();
          break;
        }
        case State.UntilClose:
          this.take(buf, off, buf.length - off);
          off = buf.length;
          break;
        case State.Idle:
          this.protocolError(`unexpected ${buf.length - off} bytes after the end of a response`);
          return;
      }
    }
    if (off < buf.length && this.dead === undefined) {
      this.fail(new HttpError(`unexpected ${buf.length - off} bytes after the end of a response`));
      this.socket.destroy();
    }
  }

  private readHead(buf: Buffer, off: number): number {
    let data: Buffer;
    let base: number;
    if (this.head) {
      data = Buffer.concat([this.head, buf.subarray(off)]);
      base = this.head.length;
    } else {
      data = off === 0 ? buf : buf.subarray(off);
      base = 0;
    }
    const end = data.indexOf(CRLFCRLF);
    if (end < 0) {
      if (data.length > 64 * 1024) this.protocolError('response head larger than 64 KiB');
      else this.head = Buffer.from(data);
      return buf.length;
    }
    this.head = undefined;
    const text = data.toString('latin1', 0, end);
    const consumed = off + (end + 4 - base);
    const lines = text.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    if (!m) {
      this.protocolError(`bad status line ${JSON.stringify(lines[0])}`);
      return buf.length;
    }
    this.status = Number(m[1]);
    let length = -1;
    let chunked = false;
    for (let i = 1; i < lines.length; i++) {
      const l = lines[i]!;
      const colon = l.indexOf(':');
      if (colon < 0) continue;
      const name = l.slice(0, colon).trim().toLowerCase();
      const value = l.slice(colon + 1).trim().toLowerCase();
      if (name === 'content-length') length = Number(value);
      else if (name === 'transfer-encoding') chunked = value.split(',').map((s) => s.trim()).includes('chunked');
      else if (name === 'connection' && value.split(',').map((s) => s.trim()).includes('close')) this.closeAfter = true;
    }
    const p = this.pending!;
    if (this.status === 101) {
      this.protocolError('unexpected 101 Switching Protocols');
    } else if (p.noBody || this.status === 204 || this.status === 304 || (this.status >= 100 && this.status < 200)) {
      this.finish();
    } else if (chunked) {
      this.state = State.ChunkSize;
    } else if (length >= 0) {
      this.remaining = length;
      this.state = State.Length;
      if (length === 0) this.finish();
    } else {
      this.state = State.UntilClose;
    }
    return consumed;
  }

  private take(buf: Buffer, off: number, n: number): void {
    if (n <= 0) return;
    this.bytes += n;
    // Copy: the socket's buffer may be reused once we return.
    if (this.pending?.collect) this.parts.push(Buffer.from(buf.subarray(off, off + n)));
  }

  private finish(): void {
    const p = this.pending;
    if (!p) return;
    this.pending = undefined;
    this.state = State.Idle;
    live.delete(this);
    const r: Response = p.collect ? { status: this.status, bytes: this.bytes, body: Buffer.concat(this.parts) } : { status: this.status, bytes: this.bytes };
    this.parts = [];
    if (this.closeAfter) {
      this.dead ??= new HttpError('the server closed the connection (Connection: close)');
      this.socket.end();
    }
    p.resolve(r);
  }

  private protocolError(msg: string): void {
    this.fail(new HttpError(msg));
    this.socket.destroy();
  }
}

export function describe(address: Address): string {
  return address.kind === 'unix' ? `unix:${address.path}` : `${address.host}:${address.port}`;
}

/** A complete request as bytes, built once and sent many times. */
export function buildRequest(ep: Endpoint, method: string, path: string, opts: { body?: Buffer; contentType?: string; contentLength?: number } = {}): Buffer {
  const host = ep.address.kind === 'tcp' ? `${ep.address.host}:${ep.address.port}` : 'docker';
  let head = `${method} ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: dockward-bench\r\n${ep.headerLines}`;
  const length = opts.body?.length ?? opts.contentLength;
  if (length !== undefined) head += `Content-Type: ${opts.contentType ?? 'application/json'}\r\nContent-Length: ${length}\r\n`;
  head += '\r\n';
  const h = Buffer.from(head, 'latin1');
  return opts.body ? Buffer.concat([h, opts.body]) : h;
}

/** One request on a fresh connection, closed afterwards: for setup and rare calls. */
export async function once(
  ep: Endpoint,
  method: string,
  path: string,
  opts: { json?: unknown; collect?: boolean; timeoutMs?: number } = {},
): Promise<Response> {
  const c = await Conn.open(ep.address);
  try {
    const body = opts.json === undefined ? undefined : Buffer.from(JSON.stringify(opts.json));
    return await c.send(buildRequest(ep, method, path, { body }), { collect: opts.collect ?? true, timeoutMs: opts.timeoutMs });
  } finally {
    c.close();
  }
}

/** `once` that insists on a 2xx status and returns the parsed JSON body (or undefined when empty). */
export async function callJson<T = unknown>(ep: Endpoint, method: string, path: string, json?: unknown, timeoutMs = 60_000): Promise<T> {
  const r = await once(ep, method, path, { json, collect: true, timeoutMs });
  const text = r.body?.toString('utf8') ?? '';
  if (r.status < 200 || r.status > 299) throw new HttpError(`${method} ${path} via ${ep.name}: HTTP ${r.status}: ${text.slice(0, 300)}`);
  return (text === '' ? undefined : JSON.parse(text)) as T;
}
