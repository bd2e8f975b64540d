/**
 * The raw relay (`upstreamClient: relay`, issue 7): the gateway reads only request heads and
 * relays the daemon's answer bytes unchanged, on a daemon connection paired with the client's.
 *
 * A general HTTP proxy (node:http server + client) parses, re-frames and re-serialises every
 * answer; a bare Node HTTP relay costs ~180 µs per `/_ping` here, a byte relay ~68 µs
 * (pitfalls.md). Every request is still parsed, authenticated, classified and authorised on its
 * own by the same stages as the node:http path (server.ts); only the answer is not re-parsed:
 * its head is read for its status and framing (to know where it ends), and its bytes are written
 * to the client as they came.
 *
 * One exchange at a time per connection: pipelined requests wait, unparsed, until the previous
 * answer is complete, so each is judged on its own and none reaches the daemon unjudged.
 * Request bodies are re-framed by the gateway (chunked bodies are decoded and chunked again), so
 * the daemon reads exactly the framing the gateway read.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { rejection } from '../errors.js';
import { nextRequestId, type BodySource, type RequestContext } from '../pipeline/context.js';
import { NOT_FORWARDED } from '../pipeline/forward.js';
import { collectList, createEventFilter, type ListCollector } from '../pipeline/listfilter.js';
import type { Observer } from '../pipeline/observe.js';
import { rejectionBytes } from '../pipeline/reject.js';
import type { StageRunner } from '../server.js';
import { MAX_DISCARDED_BODY_BYTES } from '../server.js';
import type { Rejection } from '../types.js';
import { ChunkedReader, frameChunk, LAST_CHUNK, parseRequestHead, parseResponseHead, type RequestHead } from './http1.js';
import { adoptPooledReads, connectPooled, DAEMON_READS, type Lease } from './pool.js';
import { loadSockopt, sendBufferOf, widenSendBuffer, type SendBufferReport } from './sockopt.js';

export interface RelayOptions {
  socketPath: string;
  run: StageRunner;
  observer: Observer;
  /** Largest request or response head. */
  maxHeadBytes: number;
  /** An idle keep-alive connection is closed after this long. */
  keepAliveMs: number;
  /** A request head must be complete this long after its first byte. */
  headersTimeoutMs: number;
  /** A fault inside the relay (a bug): the connection is cut, the gateway keeps serving. */
  onFault?: (err: unknown) => void;
  /** What the first upload's daemon connection's send buffer became (sockopt.ts), for the log. */
  onSendBuffer?: (r: SendBufferReport) => void;
}

/**
 * Bytes a stream may queue in the gateway towards the slower side before the faster one is
 * paused. Node's default (16 KiB, a fraction of a unix socket's buffer) paused an upload at
 * almost every write, and the pipeline ran stop-and-go with a core idle. The 'drain' that
 * resumes comes when the queue is handed to the kernel, whose buffer keeps the reader busy.
 */
const STREAM_BUFFER_BYTES = 1024 * 1024;
/**
 * How long a closing connection may keep sending what the gateway drops (the rest of a refused
 * upload) before it is cut; the answer went out first.
 */
const CLOSING_MAX_MS = 60_000;
/** Sweeps (seconds) a closing connection's unsent answer may stand still before it is cut. */
const CLOSING_STALL_SWEEPS = 60;
/** Bytes of later (pipelined) requests held while one is in flight, before the client is paused. */
const HOLD_BYTES = 1024 * 1024;
const EMPTY = Buffer.alloc(0);


const enum In {
  /** Reading a request head. */
  Head,
  /** A request is in flight and its body (if any) is not claimed yet: bytes are held. */
  Hold,
  /** An inspected body is being read into memory. */
  Read,
  /** A body is being streamed to the daemon. */
  Body,
  /** A refused request's body: read and dropped, up to a bound. */
  Discard,
  /** Upgraded: raw bytes to the daemon. */
  Tunnel,
}

const enum Out {
  Idle,
  Head,
  Sized,
  Chunked,
  UntilClose,
  FilterList,
  FilterEvents,
  Tunnel,
}

/**
 * Streamed bytes read in one turn of the event loop (libuv reads a busy socket up to 32 times a
 * turn, as long as each read fills its buffer) go to the other side in one writev: fewer
 * syscalls and fewer wake-ups of the reader. A short read is the socket's last in the turn, so
 * its reader flushes the batch at once; otherwise the batch is flushed after the poll phase
 * (setImmediate), which also covers a full read followed by nothing (libuv reports no bytes
 * then).
 */
class WriteBatch {
  private socket: Socket | undefined;
  private timer: NodeJS.Immediate | undefined;

  /** Corks `socket` for the writes that follow, unless a batch on it is open; `more`: more reads may come in this turn. */
  start(socket: Socket, more: boolean): void {
    if (this.socket !== socket) {
      this.flush();
      this.socket = socket;
      socket.cork();
    }
    if (more && !this.timer) this.timer = setImmediate(this.flush);
  }

  /** One read's bytes to `socket`: straight out when nothing is batched and no read follows in this turn. */
  write(socket: Socket, bytes: Buffer, written: ((err?: Error | null) => void) | undefined, last: boolean): void {
    if (last && this.socket === undefined) {
      socket.write(bytes, written);
      return;
    }
    this.start(socket, !last);
    socket.write(bytes, written);
    if (last) this.flush();
  }

  readonly flush = (): void => {
    const socket = this.socket;
    if (!socket) return;
    this.socket = undefined;
    if (this.timer) {
      clearImmediate(this.timer);
      this.timer = undefined;
    }
    socket.uncork();
  };
}

function concat(a: Buffer, b: Buffer): Buffer {
  return a.length === 0 ? b : Buffer.concat([a, b]);
}

/** Reads a body's framing: Content-Length bytes, or chunked (decoded). */
class BodyFramer {
  private remaining: number;
  private readonly chunked: ChunkedReader | undefined;
  done = false;
  constructor(head: RequestHead) {
    this.chunked = head.hasTransferEncoding ? new ChunkedReader() : undefined;
    this.remaining = head.contentLength ?? 0;
    if (!this.chunked && this.remaining === 0) this.done = true;
  }
  get isChunked(): boolean {
    return this.chunked !== undefined;
  }
  /** The payload in `chunk` and the bytes after the body (the next request), or an error. */
  push(chunk: Buffer): { data: Buffer[]; rest: Buffer } | { error: string } {
    if (this.chunked) {
      const r = this.chunked.push(chunk);
      if ('error' in r) return { error: r.error };
      if (r.end >= 0) {
        this.done = true;
        return { data: r.data, rest: chunk.subarray(r.end) };
      }
      return { data: r.data, rest: EMPTY };
    }
    const take = Math.min(this.remaining, chunk.length);
    this.remaining -= take;
    if (this.remaining === 0) this.done = true;
    return { data: take === 0 ? [] : [take === chunk.length ? chunk : chunk.subarray(0, take)], rest: chunk.subarray(take) };
  }
}

interface Exchange {
  ctx: RequestContext;
  head: RequestHead;
  body: BodyFramer;
  keepAlive: boolean;
  kind: 'response' | 'hijack';
  /** The stages allowed it and it went to the daemon. */
  forwarded: boolean;
  responseDone: boolean;
  finished: boolean;
  /** The streamed body turned out malformed: the exchange is cut and refused with this. */
  bodyError?: string;
  onBodyRead?: (r: Buffer | Rejection) => void;
  readChunks?: Buffer[];
  readSize?: number;
  readLimit?: number;
}

export interface Relay {
  /** Takes over an accepted client connection (plain or TLS). */
  accept(socket: Socket): void;
  /** Stop keeping connections alive: close idle ones now, the others after their answer. */
  drain(): void;
  /** Cut every connection (end of the shutdown grace period). */
  destroyAll(): void;
  close(): void;
}

export function createRelay(opts: RelayOptions): Relay {
  const connections = new Set<Connection>();
  let draining = false;

  class Connection {
    readonly client: Socket;
    pending: Buffer = EMPTY;
    mode: In = In.Head;
    out: Out = Out.Idle;
    ex: Exchange | undefined;
    upstream: Socket | undefined;
    upHead: Buffer = EMPTY;
    /** Sized answer: bytes left; chunked answer: its scanner. */
    outRemaining = 0;
    outChunked: ChunkedReader | undefined;
    /** The upstream connection cannot carry another request after this answer. */
    upstreamSpent = false;
    /** When the connection became idle, or when the current head's first byte came (ms). */
    since = Date.now();
    discarded = 0;
    parsing = false;
    clientEnded = false;
    closed = false;
    filterList: ListCollector | undefined;
    filterHead = '';
    filterReader: ChunkedReader | undefined;
    eventSink: ((b: Buffer) => void) | undefined;
    eventEnd: (() => void) | undefined;
    readonly upBatch = new WriteBatch();
    readonly clientBatch = new WriteBatch();
    /** Parsing waits until the client has read the answers queued for it. */
    waitingDrain = false;
    /** writableLength at the last sweep, for a closing connection (progress check). */
    sweptWritable = -1;
    stalledSweeps = 0;
    closingSince = 0;

    constructor(client: Socket) {
      this.client = client;
      client.setNoDelay(true);
      // TLS sockets keep Node's reads (adoptPooledReads refuses them).
      adoptPooledReads(
        client,
        (c, lease, last) => {
          try {
            this.onClientData(c, lease, last);
          } catch (err) {
            this.fault(err);
          }
        },
        () => this.relaysClient(),
      );
      client.on('data', (c: Buffer) => {
        try {
          this.onClientData(c);
        } catch (err) {
          this.fault(err);
        }
      });
      client.on('end', () => {
        try {
          this.onClientEnd();
        } catch (err) {
          this.fault(err);
        }
      });
      client.on('drain', () => {
        try {
          this.onClientDrain();
        } catch (err) {
          this.fault(err);
        }
      });
      client.on('error', () => {});
      client.on('close', () => {
        try {
          this.onClientClose();
        } catch (err) {
          opts.onFault?.(err);
        }
      });
    }

    /** The client's bytes only go on to the daemon (a streamed body, a session): pool.ts may lend its reads. */
    relaysClient(): boolean {
      return this.mode === In.Body || this.mode === In.Tunnel;
    }

    /**
     * The daemon's bytes only go on to the client: an answer's body, a session, or an answer's
     * head, which is read for its framing and written as it came (unless the answer is filtered).
     */
    relaysDaemon(): boolean {
      switch (this.out) {
        case Out.Sized:
        case Out.Chunked:
        case Out.UntilClose:
        case Out.Tunnel:
          return true;
        case Out.Head:
          return this.ex?.ctx.responseFilter === undefined;
        default:
          return false;
      }
    }

    /**
     * The daemon's next read is an answer on its way: the next answer's head (an idle
     * keep-alive connection waits for one; such waits get at most half of the daemon's pool),
     * the rest of a sized body, or the rest of a chunk.
     * Read into a pooled buffer, it is written without a copy (a 50-container list is ~32 KB).
     * A stream between two of its lines (`logs -f`, `events`) is not expecting: it holds no
     * buffer of its own while it waits.
     */
    expectsDaemon(): boolean {
      switch (this.out) {
        case Out.Idle:
        case Out.Head:
          return true;
        case Out.Sized:
          return this.outRemaining > 0;
        case Out.Chunked:
          return this.outChunked?.inChunk === true;
        default:
          return false;
      }
    }

    /**
     * A thrown error in a socket handler would end the process, and every other caller's
     * session with it: cut this connection (fail closed) and report the fault instead.
     */
    fault(err: unknown): void {
      opts.onFault?.(err);
      if (this.ex && !this.ex.finished && this.ex.forwarded) this.ex.ctx.upstreamError ??= 'internal';
      this.upstream?.destroy();
      this.client.destroy();
    }

    /** The stages call back outside the socket handlers: the same protection. */
    guarded(fn: () => void): void {
      try {
        fn();
      } catch (err) {
        this.fault(err);
      }
    }

    onClientDrain(): void {
      if (this.upstream?.isPaused()) this.upstream.resume();
      if (this.waitingDrain) {
        // The client has read its answers: read its next requests.
        this.waitingDrain = false;
        if (this.mode === In.Head) {
          this.client.resume();
          this.parseNext();
        }
      }
    }

    // ---- client side -------------------------------------------------------------------------

    /**
     * `lease`: the bytes are in a pooled buffer and may only be written; `last`: the socket is
     * read no more in this turn (pool.ts). Node's own reads (TLS) say neither.
     */
    onClientData(chunk: Buffer, lease?: Lease, last = false): void {
      if (lease && !this.relaysClient() && this.mode !== In.Discard) chunk = Buffer.from(chunk);
      switch (this.mode) {
        case In.Head:
          if (this.pending.length === 0) this.since = Date.now();
          this.pending = concat(this.pending, chunk);
          this.parseNext();
          return;
        case In.Hold:
          this.pending = concat(this.pending, chunk);
          if (this.pending.length > HOLD_BYTES) this.client.pause();
          return;
        case In.Read:
          this.feedRead(chunk);
          return;
        case In.Body:
          this.feedBody(chunk, lease, last);
          return;
        case In.Discard:
          this.since = Date.now();
          this.discarded += chunk.length;
          if (this.discarded > MAX_DISCARDED_BODY_BYTES) this.client.destroy();
          return;
        case In.Tunnel: {
          const up = this.upstream;
          // The daemon's side of the session is gone: the client's last bytes have nowhere to go.
          if (!up || up.destroyed) return;
          this.ex!.ctx.bytesIn += chunk.length;
          this.upBatch.write(up, chunk, lease?.hold(), last);
          this.holdClientIfQueued(up);
          return;
        }
      }
    }

    onClientEnd(): void {
      this.clientEnded = true;
      switch (this.mode) {
        case In.Head:
          // Between requests (or mid-head): nothing more will come.
          this.client.end();
          return;
        case In.Read:
          this.finishRead(rejection('bad_framing', 'the request body ended early'));
          return;
        case In.Body:
          // A body cut short must not reach the daemon as if it were whole.
          this.upstream?.destroy();
          return;
        case In.Tunnel:
          this.upstream?.end();
          return;
        default:
          // The client said goodbye while its request is in flight. An answer already on its way
          // is cut, as Node's and Go's servers do: a killed `docker logs -f` must end the stream
          // (and the daemon-side work), not leave it open forever. An answer not begun yet is
          // still given, if it is complete when its head arrives (see onResponseHead).
          if (this.ex && this.ex.ctx.status !== undefined && !this.ex.responseDone) this.abort(this.ex);
          return;
      }
    }

    /** The client is gone: stop the exchange and the daemon-side work. */
    abort(ex: Exchange): void {
      ex.ctx.upstreamError ??= 'client_closed';
      this.upstream?.destroy();
      this.client.destroy();
    }

    onClientClose(): void {
      this.closed = true;
      connections.delete(this);
      const ex = this.ex;
      if (ex && !ex.finished) {
        if (ex.ctx.status !== undefined && !ex.responseDone && this.out !== Out.Tunnel) ex.ctx.upstreamError ??= 'client_closed';
        if (ex.onBodyRead) this.finishRead(rejection('bad_framing', 'the request body ended early'));
      }
      // Stop the daemon-side work when the client goes away mid-stream (`logs -f` closed).
      this.upstream?.destroy();
      if (ex && ex.forwarded && !ex.finished) this.complete(ex);
    }

    /** Parses and starts the requests already received, one at a time. */
    parseNext(): void {
      if (this.parsing) return;
      this.parsing = true;
      try {
        while (this.mode === In.Head && this.pending.length > 0 && !this.closed) {
          if (this.client.writableNeedDrain) {
            // A client that pipelines requests and does not read the answers: stop reading
            // until it does, or the answers would pile up in memory.
            this.waitingDrain = true;
            this.client.pause();
            return;
          }
          const r = parseRequestHead(this.pending, opts.maxHeadBytes);
          if (r.kind === 'incomplete') return;
          if (r.kind === 'error') {
            this.closing();
            this.client.end(`HTTP/1.1 ${r.status} ${r.status === 431 ? 'Request Header Fields Too Large' : r.status === 505 ? 'HTTP Version Not Supported' : 'Bad Request'}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${JSON.stringify({ message: `dockward: malformed HTTP request: ${r.message}` })}`);
            return;
          }
          const head = r.head;
          this.pending = this.pending.subarray(head.headLength);
          this.start(head);
        }
      } finally {
        this.parsing = false;
      }
    }

    start(head: RequestHead): void {
      const body = new BodyFramer(head);
      // The body source reads through the exchange, which holds the context: built just below.
      let ex: Exchange | undefined;
      const bodySource: BodySource = {
        present: !body.done,
        read: (limit) => this.readBody(ex!, limit),
      };
      const ctx: RequestContext = {
        id: nextRequestId(),
        startNs: process.hrtime.bigint(),
        remote: this.client.remoteAddress ?? '',
        socket: this.client,
        method: head.method,
        url: head.url,
        headers: head.headers as IncomingHttpHeaders,
        upgrade: head.upgrade,
        bodySource,
        bytesIn: 0,
        bytesOut: 0,
      };
      const exchange: Exchange = {
        ctx,
        head,
        body,
        // An HTTP/1.0 request is forwarded as HTTP/1.0: the daemon answers it close-delimited.
        keepAlive: head.keepAlive && head.minor === 1,
        kind: head.upgrade ? 'hijack' : 'response',
        forwarded: false,
        responseDone: false,
        finished: false,
      };
      ex = exchange;
      this.ex = exchange;
      this.mode = In.Hold;
      opts.run(
        ctx,
        (r) => this.guarded(() => (r ? this.refuse(exchange, r) : this.forward(exchange))),
        (r) => this.guarded(() => this.refuse(exchange, r)),
      );
    }

    /** BodySource.read: the inspected body, whole, within `limit`. */
    readBody(ex: Exchange, limit: number): Promise<Buffer | Rejection> {
      if (ex.head.upgrade && ex.body.isChunked) return Promise.resolve(rejection('bad_framing', 'a chunked body on an upgrade request is refused'));
      const declared = ex.head.contentLength ?? 0;
      if (declared > limit) {
        return Promise.resolve(rejection('body_too_large', `request body of ${declared} bytes is larger than limits.inspectedBodyBytes (${limit}); it cannot be inspected`));
      }
      this.continueIfExpected(ex);
      return new Promise((resolve) => {
        ex.onBodyRead = resolve;
        ex.readChunks = [];
        ex.readSize = 0;
        ex.readLimit = limit;
        this.mode = In.Read;
        const held = this.pending;
        this.pending = EMPTY;
        if (held.length > 0) this.feedRead(held);
        if (this.mode === In.Read) {
          if (this.clientEnded) this.finishRead(rejection('bad_framing', 'the request body ended early'));
          else this.client.resume();
        }
      });
    }

    feedRead(chunk: Buffer): void {
      const ex = this.ex!;
      const r = ex.body.push(chunk);
      if ('error' in r) return this.finishRead(rejection('bad_framing', `malformed chunked body: ${r.error}`));
      for (const d of r.data) {
        ex.readSize! += d.length;
        if (ex.readSize! > ex.readLimit!) {
          return this.finishRead(rejection('body_too_large', `request body is larger than limits.inspectedBodyBytes (${ex.readLimit}); it cannot be inspected`));
        }
        ex.readChunks!.push(d);
      }
      if (ex.body.done) {
        this.pending = r.rest;
        this.finishRead(Buffer.concat(ex.readChunks!, ex.readSize));
      }
    }

    finishRead(result: Buffer | Rejection): void {
      const ex = this.ex!;
      const resolve = ex.onBodyRead;
      if (!resolve) return;
      ex.onBodyRead = undefined;
      ex.readChunks = undefined;
      // Later bytes wait for the decision (the next request, or the rest of a refused body).
      this.mode = In.Hold;
      if (!Buffer.isBuffer(result)) this.client.pause();
      resolve(result);
    }

    /** `Expect: 100-continue`: the client waits for a go-ahead before sending the body the gateway reads. */
    continueIfExpected(ex: Exchange): void {
      const expect = ex.head.headers.expect;
      // (HTTP/1.0 has no interim answers.)
      if (typeof expect === 'string' && expect.toLowerCase() === '100-continue' && !ex.body.done && ex.head.minor === 1) {
        this.client.write('HTTP/1.1 100 Continue\r\n\r\n');
      }
    }

    refuse(ex: Exchange, r: Rejection): void {
      if (ex.finished || this.closed) {
        if (!ex.finished) {
          ex.ctx.rejection = r;
          this.complete(ex);
        }
        return;
      }
      ex.ctx.rejection = r;
      const unread = !ex.body.done;
      const close = unread || !ex.keepAlive || ex.head.upgrade || draining;
      this.client.write(rejectionBytes(r, { close, head: ex.head.method === 'HEAD' }));
      ex.responseDone = true;
      if (close) ex.keepAlive = false;
      this.complete(ex);
    }

    // ---- to the daemon -----------------------------------------------------------------------

    connectUpstream(): Socket {
      if (this.upstream && !this.upstream.destroyed && !this.upstreamSpent) return this.upstream;
      this.upstream?.destroy();
      const onRead = (c: Buffer, lease: Lease | undefined, last: boolean): void => {
        if (this.upstream !== up) return;
        try {
          this.onUpstreamData(c, lease, last);
        } catch (err) {
          this.fault(err);
        }
      };
      const up = connectPooled({ path: opts.socketPath }, onRead, () => this.relaysDaemon(), DAEMON_READS, () => this.expectsDaemon());
      this.upstream = up;
      this.upstreamSpent = false;
      up.on('drain', () => {
        if (this.upstream === up && this.client.isPaused() && this.relaysClient()) this.client.resume();
      });
      up.on('end', () => {
        if (this.upstream === up) this.guarded(() => this.onUpstreamEnd());
      });
      up.on('error', (err: NodeJS.ErrnoException) => {
        if (this.upstream === up) this.onUpstreamError(err);
      });
      up.on('close', () => {
        if (this.upstream === up) this.guarded(() => this.onUpstreamClose());
      });
      return up;
    }

    forward(ex: Exchange): void {
      if (this.closed) {
        this.complete(ex);
        return;
      }
      const ctx = ex.ctx;
      if (ex.head.upgrade && !ctx.actionDef?.hijack) {
        return this.refuse(ex, rejection('bad_framing', `${ctx.classification?.action ?? 'this request'} cannot be upgraded`));
      }
      if (ex.head.upgrade && !ex.body.done && !ctx.body) {
        return this.refuse(ex, rejection('bad_framing', 'an upgrade request may only carry an inspected body'));
      }
      ctx.decidedNs = process.hrtime.bigint();
      ex.forwarded = true;
      opts.observer.streamOpened(ex.kind, ctx);
      const up = this.connectUpstream();
      this.out = Out.Head;
      this.upHead = EMPTY;

      let head = `${ctx.method} ${ctx.forwardUrl ?? ctx.url} HTTP/1.${ex.head.minor}\r\n`;
      const raw = ex.head.rawHeaders;
      const replaceLength = ctx.body !== undefined;
      for (let i = 0; i < raw.length; i += 2) {
        const name = raw[i]!;
        const lower = name.toLowerCase();
        // Expect is answered by the gateway itself (continueIfExpected).
        if (NOT_FORWARDED.has(lower) || lower === 'expect') {
          // An upgrade keeps its Connection/Upgrade pair: that is what makes dockerd hijack.
          if (!(ex.head.upgrade && (lower === 'connection' || lower === 'upgrade'))) continue;
        }
        if (replaceLength && (lower === 'content-length' || lower === 'transfer-encoding')) continue;
        head += `${name}: ${raw[i + 1]}\r\n`;
      }
      if (replaceLength) head += `Content-Length: ${ctx.body!.length}\r\n`;
      head += '\r\n';

      if (ctx.body !== undefined || ex.body.done) {
        // The inspected bytes, not a second read of the client: what the policy saw is sent.
        if (ctx.body !== undefined && ctx.body.length > 0) {
          up.cork();
          up.write(head, 'latin1');
          up.write(ctx.body);
          up.uncork();
        } else {
          up.write(head, 'latin1');
        }
        this.afterBody(ex);
        return;
      }
      // A streamed body: relayed as it arrives, re-framed by the gateway. Only uploads get the
      // wide send buffer (asked again on a kept-alive connection: ~0.4 µs): it is kernel memory
      // that a session whose reader stalls would pin.
      widenUpstream(up);
      up.write(head, 'latin1');
      this.continueIfExpected(ex);
      this.mode = In.Body;
      const held = this.pending;
      this.pending = EMPTY;
      // Bytes already read: nothing else comes with them.
      if (held.length > 0) this.feedBody(held, undefined, true);
      if (this.mode === In.Body) {
        if (this.clientEnded) up.destroy();
        else this.client.resume();
      }
    }

    feedBody(chunk: Buffer, lease: Lease | undefined, last: boolean): void {
      const ex = this.ex!;
      const up = this.upstream!;
      const r = ex.body.push(chunk);
      if ('error' in r) {
        // The daemon has part of a body that will never be completed: cut that exchange.
        ex.bodyError = `malformed chunked body: ${r.error}`;
        ex.keepAlive = false;
        up.destroy();
        this.closing();
        return;
      }
      this.upBatch.start(up, !last);
      if (ex.body.isChunked) {
        for (const d of r.data) {
          ex.ctx.bytesIn += d.length;
          for (const part of frameChunk(d)) up.write(part, lease?.hold());
        }
        if (ex.body.done) up.write(LAST_CHUNK);
      } else {
        for (const d of r.data) {
          ex.ctx.bytesIn += d.length;
          up.write(d, lease?.hold());
        }
      }
      if (last) this.upBatch.flush();
      if (!ex.body.done) this.holdClientIfQueued(up);
      if (ex.body.done) {
        // The next request's first bytes are kept: a copy, never the pooled buffer.
        this.pending = lease && r.rest.length > 0 ? Buffer.from(r.rest) : r.rest;
        this.afterBody(ex);
      }
    }

    /** A piece of a streamed answer, batched per turn as a streamed body is (WriteBatch). */
    stream(b: Buffer, lease: Lease | undefined, last: boolean): void {
      const client = this.client;
      this.clientBatch.write(client, b, lease?.hold(), last);
      // Checked at each read, not once per turn: libuv reads a busy socket up to 32 times a turn.
      if (client.writableLength > STREAM_BUFFER_BYTES) this.upstream?.pause();
    }

    /** The daemon reads slower than the client sends: stop reading the client until 'drain'. */
    holdClientIfQueued(up: Socket): void {
      if (up.writableLength > STREAM_BUFFER_BYTES && !up.destroyed) this.client.pause();
    }

    /** The whole request is with the daemon. */
    afterBody(ex: Exchange): void {
      if (ex.head.upgrade) {
        // Bytes after an upgrade request belong to the stream, once the daemon agrees to it.
        this.mode = In.Hold;
        return;
      }
      this.mode = In.Hold;
      if (this.pending.length > HOLD_BYTES) this.client.pause();
      if (ex.responseDone) this.complete(ex);
    }

    // ---- from the daemon ---------------------------------------------------------------------

    /** `lease`, `last`: as for onClientData. */
    onUpstreamData(chunk: Buffer, lease: Lease | undefined, last: boolean): void {
      const ex = this.ex;
      if (!ex || ex.finished) {
        // Nothing was asked: a daemon that talks out of turn cannot be trusted with the next request.
        this.upstream?.destroy();
        return;
      }
      if (lease && !this.relaysDaemon()) {
        chunk = Buffer.from(chunk);
        lease = undefined;
      }
      switch (this.out) {
        case Out.Head:
          // A head split over reads was kept as a copy; joined to it, the bytes are the relay's own.
          if (this.upHead.length > 0) return this.onResponseHead(ex, concat(this.upHead, chunk), undefined);
          return this.onResponseHead(ex, chunk, lease);
        case Out.Sized: {
          const take = Math.min(this.outRemaining, chunk.length);
          this.outRemaining -= take;
          ex.ctx.bytesOut += take;
          if (take < chunk.length) this.upstreamSpent = true;
          this.stream(take === chunk.length ? chunk : chunk.subarray(0, take), lease, last);
          if (this.outRemaining === 0) this.responseEnded(ex);
          return;
        }
        case Out.Chunked:
          return this.relayChunked(ex, chunk, lease, last);
        case Out.UntilClose:
        case Out.Tunnel:
          ex.ctx.bytesOut += chunk.length;
          this.stream(chunk, lease, last);
          return;
        case Out.FilterList:
        case Out.FilterEvents:
          return this.filterData(ex, chunk);
        default:
          this.upstream?.destroy();
      }
    }

    write(b: Buffer | string, lease?: Lease): void {
      this.client.write(b, lease?.hold());
      if (this.client.writableLength > STREAM_BUFFER_BYTES) this.upstream?.pause();
    }

    onResponseHead(ex: Exchange, buf: Buffer, lease: Lease | undefined): void {
      this.relayResponseHead(ex, buf, lease);
      if (this.clientEnded && ex.ctx.status !== undefined && !ex.responseDone && this.out !== Out.Tunnel && !this.closed) this.abort(ex);
    }

    /** `lease`: `buf` is in a pooled buffer: written as it is, copied to be kept (pool.ts). */
    relayResponseHead(ex: Exchange, buf: Buffer, lease: Lease | undefined): void {
      const r = parseResponseHead(buf, opts.maxHeadBytes);
      if (r.kind === 'incomplete') {
        this.upHead = lease ? Buffer.from(buf) : buf;
        return;
      }
      this.upHead = EMPTY;
      if (r.kind === 'error') {
        ex.ctx.upstreamError = `bad response: ${r.message}`;
        this.upstream?.destroy();
        return;
      }
      const h = r.head;
      const ctx = ex.ctx;
      if (h.status >= 100 && h.status < 200 && h.status !== 101) {
        // An interim answer (100 Continue): relay it, the final one follows.
        this.write(buf.subarray(0, h.headLength), lease);
        const rest = buf.subarray(h.headLength);
        if (rest.length > 0) this.relayResponseHead(ex, rest, lease);
        return;
      }
      ctx.status = h.status;
      if (h.close) {
        this.upstreamSpent = true;
        ex.keepAlive = false;
      }
      if (h.status === 101) {
        if (!ex.head.upgrade) {
          ctx.upstreamError = 'unexpected 101 from the daemon';
          this.upstream?.destroy();
          return;
        }
        return this.startTunnel(ex, buf, lease);
      }
      // Not upgraded: relay the answer and close; no client bytes are tunnelled.
      if (ex.head.upgrade) ex.keepAlive = false;
      const noBody = ex.head.method === 'HEAD' || h.status === 204 || h.status === 304;
      // A filtered answer is collected, so its bytes are kept: relaysDaemon() is false while its
      // head is awaited, so onUpstreamData copied them and no lease reaches here.
      if (ctx.responseFilter && h.status === 200 && !noBody) return this.startFilter(ex, buf, h.headLength, h.chunked, h.contentLength);
      const body = buf.subarray(h.headLength);
      if (noBody) {
        if (body.length > 0) this.upstreamSpent = true;
        this.write(h.headLength === buf.length ? buf : buf.subarray(0, h.headLength), lease);
        return this.responseEnded(ex);
      }
      if (h.chunked) {
        this.out = Out.Chunked;
        this.outChunked = new ChunkedReader();
        // The head goes out with whatever body came with it, in one write.
        this.flushWithHead(ex, buf, h.headLength, lease);
        return;
      }
      if (h.contentLength !== undefined) {
        this.out = Out.Sized;
        this.outRemaining = h.contentLength;
        const take = Math.min(h.contentLength, body.length);
        if (take < body.length) this.upstreamSpent = true;
        this.outRemaining -= take;
        ctx.bytesOut += take;
        this.write(take === body.length ? buf : buf.subarray(0, h.headLength + take), lease);
        if (this.outRemaining === 0) this.responseEnded(ex);
        return;
      }
      // No length and not chunked: the answer ends when the daemon closes.
      this.out = Out.UntilClose;
      this.upstreamSpent = true;
      ex.keepAlive = false;
      ctx.bytesOut += body.length;
      this.write(buf, lease);
    }

    flushWithHead(ex: Exchange, buf: Buffer, headLength: number, lease: Lease | undefined): void {
      const body = buf.subarray(headLength);
      if (body.length === 0) {
        this.write(buf, lease);
        return;
      }
      const r = this.outChunked!.push(body);
      if ('error' in r) return this.badChunked(ex);
      for (const d of r.data) ex.ctx.bytesOut += d.length;
      if (r.end >= 0) {
        if (r.end < body.length) this.upstreamSpent = true;
        this.write(buf.subarray(0, headLength + r.end), lease);
        return this.responseEnded(ex);
      }
      this.write(buf, lease);
    }

    relayChunked(ex: Exchange, chunk: Buffer, lease: Lease | undefined, last: boolean): void {
      const r = this.outChunked!.push(chunk);
      if ('error' in r) return this.badChunked(ex);
      for (const d of r.data) ex.ctx.bytesOut += d.length;
      if (r.end >= 0) {
        if (r.end < chunk.length) this.upstreamSpent = true;
        this.stream(r.end === chunk.length ? chunk : chunk.subarray(0, r.end), lease, last);
        return this.responseEnded(ex);
      }
      this.stream(chunk, lease, last);
    }

    badChunked(ex: Exchange): void {
      // Half an answer went out: the client must see the connection fail, not a short answer.
      ex.ctx.upstreamError = 'bad response: malformed chunked body';
      this.upstream?.destroy();
      this.client.destroy();
    }

    startTunnel(ex: Exchange, buf: Buffer, lease: Lease | undefined): void {
      this.out = Out.Tunnel;
      ex.ctx.bytesOut += buf.length - (buf.indexOf('\r\n\r\n') + 4);
      this.write(buf, lease);
      this.mode = In.Tunnel;
      // Bytes the client sent early (after the request, before the 101) belong to the stream.
      const early = this.pending;
      this.pending = EMPTY;
      if (early.length > 0) {
        ex.ctx.bytesIn += early.length;
        this.upstream!.write(early);
      }
      if (this.clientEnded) this.upstream!.end();
      else this.client.resume();
    }

    /** A list or event answer filtered item by item for the caller (issue 4). */
    startFilter(ex: Exchange, buf: Buffer, headLength: number, chunked: boolean, length: number | undefined): void {
      const ctx = ex.ctx;
      const lines = buf.subarray(0, headLength - 4).toString('latin1').split('\r\n');
      let head = `${lines[0]}\r\n`;
      for (let i = 1; i < lines.length; i++) {
        const name = lines[i]!.slice(0, lines[i]!.indexOf(':')).trim().toLowerCase();
        if (name === 'content-length' || name === 'transfer-encoding') continue;
        head += `${lines[i]}\r\n`;
      }
      this.filterHead = head;
      this.filterReader = chunked ? new ChunkedReader() : undefined;
      this.outRemaining = length ?? -1;
      if (!chunked && length === undefined) {
        this.upstreamSpent = true;
        ex.keepAlive = false;
      }
      if (ctx.classification?.action === 'system.events') {
        this.out = Out.FilterEvents;
        const { keep, ownership } = ctx.responseFilter!;
        const filter = createEventFilter(keep, ownership);
        this.eventSink = (b) => filter.write(b);
        // HTTP/1.0 has no chunked framing: there the kept lines go out as they are, and the end
        // of the stream is the end of the connection (the exchange is not kept alive).
        const chunked = ex.head.minor === 1;
        this.write(chunked ? `${head}Transfer-Encoding: chunked\r\n\r\n` : `${head}\r\n`);
        filter.on('data', (c: Buffer) => {
          ctx.bytesOut += c.length;
          if (!chunked) return this.write(c);
          this.client.cork();
          for (const p of frameChunk(c)) this.write(p);
          this.client.uncork();
        });
        this.eventEnd = () => {
          filter.end();
          if (chunked) this.write(LAST_CHUNK);
        };
      } else {
        this.out = Out.FilterList;
        this.filterList = collectList(ctx.classification!.action, ctx.responseFilter!.keep, ctx.responseFilter!.ownership);
      }
      const body = buf.subarray(headLength);
      if (body.length > 0 || length === 0) this.filterData(ex, body);
    }

    filterData(ex: Exchange, chunk: Buffer): void {
      let data: Buffer[];
      let ended = false;
      if (this.filterReader) {
        const r = this.filterReader.push(chunk);
        if ('error' in r) return this.badChunked(ex);
        data = r.data;
        if (r.end >= 0) {
          ended = true;
          if (r.end < chunk.length) this.upstreamSpent = true;
        }
      } else if (this.outRemaining >= 0) {
        const take = Math.min(this.outRemaining, chunk.length);
        this.outRemaining -= take;
        data = [chunk.subarray(0, take)];
        if (take < chunk.length) this.upstreamSpent = true;
        ended = this.outRemaining === 0;
      } else {
        data = [chunk];
      }
      if (this.out === Out.FilterEvents) {
        for (const d of data) if (d.length > 0) this.eventSink!(d);
        if (ended) {
          this.eventEnd!();
          this.responseEnded(ex);
        }
        return;
      }
      for (const d of data) {
        const tooLarge = this.filterList!.push(d);
        if (tooLarge) return this.filterFailed(ex, tooLarge);
      }
      if (ended) this.filterListEnd(ex);
    }

    filterListEnd(ex: Exchange): void {
      const ctx = ex.ctx;
      const filtered = this.filterList!.finish();
      this.filterList = undefined;
      if (!Buffer.isBuffer(filtered)) return this.filterFailed(ex, filtered);
      ctx.bytesOut = filtered.length;
      this.client.cork();
      this.write(`${this.filterHead}Content-Length: ${filtered.length}\r\n\r\n`);
      this.write(filtered);
      this.client.uncork();
      this.responseEnded(ex);
    }

    filterFailed(ex: Exchange, r: Rejection): void {
      const ctx = ex.ctx;
      ctx.status = r.status;
      ctx.upstreamError = r.message;
      this.filterList = undefined;
      this.upstreamSpent = true;
      ex.keepAlive = false;
      this.upstream?.destroy();
      this.write(rejectionBytes(r, { close: true }));
      this.responseEnded(ex);
    }

    onUpstreamEnd(): void {
      const ex = this.ex;
      if (this.out === Out.Tunnel) {
        // The daemon closed its half (the container's output ended): pass the half-close on.
        this.client.end();
        return;
      }
      this.upstreamSpent = true;
      if (ex && !ex.finished && ex.forwarded && !ex.responseDone) {
        if (this.out === Out.UntilClose) return this.responseEnded(ex);
        if (this.out === Out.FilterList && this.outRemaining < 0 && !this.filterReader) return this.filterListEnd(ex);
        if (this.out === Out.FilterEvents && this.outRemaining < 0 && !this.filterReader) {
          this.eventEnd!();
          return this.responseEnded(ex);
        }
      }
      this.upstream?.destroy();
    }

    onUpstreamError(err: NodeJS.ErrnoException): void {
      const ex = this.ex;
      if (ex && !ex.finished && ex.forwarded && ex.ctx.status === undefined) ex.ctx.upstreamError ??= err.code ?? err.message;
    }

    onUpstreamClose(): void {
      const ex = this.ex;
      this.upstream = undefined;
      if (!ex || ex.finished || !ex.forwarded) return;
      if (this.out === Out.Tunnel) {
        // The session ends when both sides are closed; give the client a moment to flush.
        this.closing();
        if (!this.client.destroyed) this.client.end();
        ex.responseDone = true;
        if (this.closed) this.complete(ex);
        return;
      }
      if (ex.responseDone) return;
      if (ex.ctx.status === undefined) {
        // Nothing was relayed: the client gets the gateway's 502 in Docker's shape.
        if (!ex.bodyError) ex.ctx.upstreamError ??= 'upstream_closed';
        ex.forwarded = false;
        opts.observer.streamClosed(ex.kind, ex.ctx);
        this.out = Out.Idle;
        const r = ex.bodyError
          ? rejection('bad_framing', ex.bodyError)
          : rejection('upstream_unavailable', `the Docker daemon is unreachable (${ex.ctx.upstreamError})`);
        if (!ex.body.done) ex.keepAlive = false;
        this.refuse(ex, r);
        return;
      }
      // Part of an answer went out: the client must see the connection fail, not a short answer.
      ex.ctx.upstreamError ??= 'upstream_closed';
      this.client.destroy();
    }

    responseEnded(ex: Exchange): void {
      this.out = Out.Idle;
      ex.responseDone = true;
      if (this.upstream?.isPaused() && this.client.writableLength <= STREAM_BUFFER_BYTES) this.upstream.resume();
      if (this.upstreamSpent) {
        this.upstream?.destroy();
        this.upstream = undefined;
      }
      if (!ex.body.done) {
        // The daemon answered before reading the whole body: this connection cannot be reused.
        ex.keepAlive = false;
        this.upstream?.destroy();
        this.upstream = undefined;
        this.closing();
      }
      this.complete(ex);
    }

    /** The exchange is over: observe it, then read the next request or close. */
    complete(ex: Exchange): void {
      if (ex.finished) return;
      ex.finished = true;
      if (ex.forwarded) opts.observer.streamClosed(ex.kind, ex.ctx);
      opts.observer.finish(ex.ctx);
      if (this.closed) return;
      if (!ex.keepAlive || draining || this.clientEnded) {
        this.closing();
        this.client.end();
        // Unread bytes still arrive (a refused upload): read them, so the client sees the answer
        // instead of a reset, up to a bound.
        this.client.resume();
        return;
      }
      this.ex = undefined;
      this.mode = In.Head;
      this.since = Date.now();
      if (this.client.writableNeedDrain) {
        this.waitingDrain = true;
        this.client.pause();
        return;
      }
      if (this.client.isPaused()) this.client.resume();
      if (this.pending.length > 0) {
        if (this.parsing) return; // the loop in parseNext picks it up
        this.parseNext();
      }
    }

    /** From here on the connection only reads (and drops) what the client still sends, then closes. */
    closing(): void {
      this.mode = In.Discard;
      this.since = Date.now();
      this.closingSince = this.since;
      this.sweptWritable = -1;
      this.stalledSweeps = 0;
    }
  }

  loadSockopt();
  let sendBufferReported = false;
  /** Widens a daemon connection's send buffer (sockopt.ts); the first result is reported for the log. */
  function widenUpstream(up: Socket): void {
    const failed = widenSendBuffer(up);
    if (sendBufferReported) return;
    sendBufferReported = true;
    const bytes = failed === undefined ? sendBufferOf(up) : undefined;
    opts.onSendBuffer?.(bytes !== undefined ? { bytes } : { unavailable: failed ?? 'getsockopt(SO_SNDBUF) failed' });
  }

  // One sweep a second instead of a timer per request.
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const c of connections) {
      if (c.mode === In.Discard) {
        // A connection the gateway is closing. With allowHalfOpen, a client that never sends
        // its FIN would hold it (and a file descriptor) forever: release it once the client has
        // been quiet for a while and the answer has gone out, or when the answer stops moving.
        if (now - c.closingSince > CLOSING_MAX_MS) {
          c.client.destroy();
          continue;
        }
        if (now - c.since <= opts.keepAliveMs) continue;
        const queued = c.client.writableLength;
        if (queued === 0 || (queued === c.sweptWritable && ++c.stalledSweeps > CLOSING_STALL_SWEEPS)) c.client.destroy();
        else if (queued !== c.sweptWritable) c.stalledSweeps = 0;
        c.sweptWritable = queued;
        continue;
      }
      if (c.mode !== In.Head || c.ex) continue;
      if (c.pending.length === 0) {
        if (now - c.since > opts.keepAliveMs) c.client.destroy();
      } else if (now - c.since > opts.headersTimeoutMs) {
        c.closing();
        c.client.end('HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{"message":"dockward: the request head did not arrive in time"}');
      }
    }
  }, 1000);
  sweep.unref();

  return {
    accept(socket) {
      const c = new Connection(socket);
      connections.add(c);
    },
    drain() {
      draining = true;
      for (const c of connections) {
        if (c.mode === In.Head && !c.ex && c.pending.length === 0) c.client.destroy();
      }
    },
    destroyAll() {
      for (const c of connections) {
        c.client.destroy();
        c.upstream?.destroy();
      }
    },
    close() {
      clearInterval(sweep);
    },
  };
}
