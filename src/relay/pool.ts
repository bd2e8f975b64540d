/**
 * Reused read buffers for streamed bytes (issue 7).
 *
 * Node reads every socket into a fresh 64 KiB buffer. A gigabyte relayed is 16,000 of them: the
 * ones still queued for the other side when a young-generation GC runs are promoted, and V8 then
 * runs full mark-compact collections of the whole heap to free them (measured: 21-30% of the
 * gateway's `perf` samples during uploads, in two runs, were major GC, where a bare relay with a
 * small heap spent none). Reading into buffers from a pool, and returning each once every write that
 * carries a piece of it has been handed to the kernel, takes that allocation out of the path.
 *
 * The rule that keeps it safe: a pooled buffer is only ever passed to `Socket.write` (with
 * `Lease.hold` / its callback); any code that keeps bytes (a head being parsed, an inspected body,
 * a list being filtered, the bytes after a body) gets a copy. A write that reports an error
 * never returns its buffer to the pool: it is left to the GC, so no buffer is reused while Node
 * may hold it. (A write libuv had already taken when its socket was destroyed is cancelled and
 * reported without error: libuv is done with it then, so its buffer may return.) A reader that
 * throws does not return its buffer either: Node has not switched the socket to its next buffer
 * yet, and would read into one handed to another socket.
 *
 * A busy client stream reads 1 MiB at a time, not Node's 64 KiB. Each read of a client's TCP
 * socket that frees room in its window sends a window update, and on loopback the client's
 * handling of it runs in the reader's context too; 16 times fewer reads cut the gateway's CPU per
 * GB uploaded by a quarter to a half (measured in docs/performance.md). The daemon's unix socket holds at
 * most its ~208 KiB send buffer, so its reads stay at 64 KiB: a 1 MiB buffer would be mostly
 * empty, and an export's queue of answers pinned several of them (RSS rose 20 MiB over ten rounds).
 * A socket holds its next read's buffer while it waits, so each pool bounds the buffers it lends
 * at once: past the bound, reads go to the shared buffer and are copied, slower but never more
 * memory.
 */
import net from 'node:net';
import tls from 'node:tls';

/** Node's own read size: the shared buffer that idle and small reads go to. */
const SHARED_READ_BYTES = 64 * 1024;
/** A read at least this full marks its socket busy: the next read gets a pooled buffer. */
const BUSY_READ_BYTES = SHARED_READ_BYTES / 2;

/** Read buffers of one size, reused; `lentMax` lent at once at most, `keepMax` kept when free. */
export class BufferPool {
  private readonly free: Buffer[] = [];
  private lentNow = 0;

  constructor(
    readonly bytes: number,
    private readonly lentMax: number,
    private readonly keepMax: number,
  ) {}

  /** A buffer, or undefined when `lentMax` are lent already (the caller reads into SHARED). */
  take(): Buffer | undefined {
    if (this.lentNow >= this.lentMax) return undefined;
    this.lentNow++;
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.bytes);
  }

  /**
   * A buffer for a read that is only expected (an idle keep-alive connection waiting for its
   * next answer, the rest of a small answer), or undefined once half of `lentMax` is lent:
   * however many connections wait, the other half stays for the sockets that are busy now.
   */
  takeSpare(): Buffer | undefined {
    return this.lentNow < this.lentMax / 2 ? this.take() : undefined;
  }

  /** Nothing holds `b` any more: it may be reused. */
  giveBack(b: Buffer): void {
    this.lentNow--;
    if (this.free.length < this.keepMax) this.free.push(b);
  }

  /** A buffer Node may still hold (a failed write) is left to the GC and no longer counts. */
  forget(): void {
    this.lentNow--;
  }

  /** Buffers lent now (tests: every path that takes one must end in giveBack or forget). */
  get lent(): number {
    return this.lentNow;
  }
}

/**
 * The clients' sockets (uploads, attach input): 1 MiB reads. A busy upload holds two or three
 * (the relay pauses its client past 1 MiB queued for the daemon), so 48 serve sixteen uploads at
 * full speed; four are kept.
 */
export const CLIENT_READS = new BufferPool(1024 * 1024, 48, 4);
/** The daemon's sockets (exports, logs, attach output): 64 KiB reads, 16 MiB lent at most. */
export const DAEMON_READS = new BufferPool(64 * 1024, 256, 64);

/** One read's buffer, shared by the writes that carry pieces of it. */
export class Lease {
  private refs = 1;
  private failed = false;
  constructor(
    private readonly buf: Buffer,
    private readonly pool: BufferPool,
  ) {}

  /** A write callback: the piece it carried is with the kernel (or the write failed). */
  readonly written = (err?: Error | null): void => {
    if (err) this.failed = true;
    this.release();
  };

  /** Another write will carry a piece of the buffer; pass `written` as its callback. */
  hold(): (err?: Error | null) => void {
    this.refs++;
    return this.written;
  }

  /** The reader is done with the buffer; it returns to the pool once no write holds it. */
  release(): void {
    if (--this.refs > 0) return;
    if (this.failed) this.pool.forget();
    else this.pool.giveBack(this.buf);
  }

  /** The reader failed: the buffer is never reused (left to the GC). */
  abandon(): void {
    this.failed = true;
    this.release();
  }
}

/**
 * Reads of idle or slow sockets (a request head, a log line) all go to this one buffer and are
 * copied out at once, as Node's own reads would allocate them: a stream whose last read was small
 * (500 open `logs -f` streams) holds no buffer of its own. A socket reads into a pooled buffer
 * (and holds it while it waits, until its next read or its close) when its last read was at least
 * BUSY_READ_BYTES in a mode that relays bytes as they are, or when its caller expects bytes it
 * will relay (the daemon's socket awaiting or in the middle of an answer: at most half of its
 * pool, takeSpare).
 */
const SHARED = Buffer.allocUnsafeSlow(SHARED_READ_BYTES);

/**
 * Gets one read's bytes. `lease` is set when they are in a pooled buffer: then they may only be
 * written (`socket.write(piece, lease.hold())`) and must be copied to be kept. Without a lease
 * the bytes are the callee's own. `last`: the read did not fill its buffer, so libuv reads this
 * socket no more in this turn of the event loop (it stops at a short read): whatever the callee
 * batches for the other side can go now.
 */
export type PooledRead = (bytes: Buffer, lease: Lease | undefined, last: boolean) => void;

interface ReadOptions extends net.OnReadOpts {
  buffer: () => Buffer;
  /** Returns true: pausing is the callee's (`socket.pause()`), not a return value's. */
  callback: (n: number, buf: Uint8Array) => boolean;
  /** The socket is closed: the buffer it was waiting to read into goes back (call on 'close'). */
  closed: () => void;
}

/**
 * `onread` options for a socket the gateway connects (public Node API), used by connectPooled;
 * adoptPooledReads sets the same on an accepted socket. `relays()`: the socket is in a mode that
 * only writes what it reads to the other side. `expects()`: its next read will be relayed and is
 * on its way (an answer the daemon is sending), so it gets a pooled buffer even after a small
 * read; without it, only a busy socket does.
 */
export function pooledReadOptions(onRead: PooledRead, relays: () => boolean, pool: BufferPool, expects?: () => boolean): ReadOptions {
  let busy = false;
  /** The pooled buffer the socket waits to read into (Node asks for it right after each read). */
  let waiting: Buffer | undefined;
  return {
    buffer: () => {
      waiting = busy && relays() ? pool.take() : expects?.() ? pool.takeSpare() : undefined;
      return waiting ?? SHARED;
    },
    callback: (n, u8) => {
      const buf = u8 as Buffer;
      busy = n >= BUSY_READ_BYTES;
      const last = n < buf.length;
      if (buf === SHARED) {
        onRead(Buffer.from(buf.subarray(0, n)), undefined, last);
        return true;
      }
      // From here the lease accounts for the buffer, also when the reader throws.
      waiting = undefined;
      const lease = new Lease(buf, pool);
      try {
        onRead(buf.subarray(0, n), lease, last);
      } catch (err) {
        lease.abandon();
        throw err;
      }
      lease.release();
      return true;
    },
    closed: () => {
      // A closed socket reads no more: libuv is done with the buffer it was waiting on.
      if (waiting) pool.giveBack(waiting);
      waiting = undefined;
    },
  };
}

/** net.connect (half-open allowed) with pooled reads, by default the daemon's. */
export function connectPooled(
  to: { path: string } | { host: string; port: number },
  onRead: PooledRead,
  relays: () => boolean,
  pool = DAEMON_READS,
  expects?: () => boolean,
): net.Socket {
  const o = pooledReadOptions(onRead, relays, pool, expects);
  const socket = net.connect({ ...to, allowHalfOpen: true, onread: o });
  socket.once('close', o.closed);
  return socket;
}

/**
 * net.Socket's read-buffer fields: module-level symbols in Node, the same on every socket, so
 * looked up once (on a socket that is never connected) rather than per connection.
 */
const READ_FIELDS = ((): { kBuffer: symbol; kBufferCb: symbol; kBufferGen: symbol } | undefined => {
  const own = Object.getOwnPropertySymbols(new net.Socket());
  const find = (d: string): symbol | undefined => own.find((k) => k.description === d);
  const kBuffer = find('kBuffer');
  const kBufferCb = find('kBufferCb');
  const kBufferGen = find('kBufferGen');
  return kBuffer && kBufferCb && kBufferGen ? { kBuffer, kBufferCb, kBufferGen } : undefined;
})();

/**
 * The same for a socket a server accepted, which Node gives no `onread` option: the socket's
 * read-buffer fields (Node 20's net.Socket internals, set by `onread` on connected sockets) are
 * set before its first read. Returns false, and the socket keeps Node's own reads ('data'
 * events), when those internals are not found, and for a TLS socket: its handle would take a
 * user buffer too, but it decrypts into buffers of its own.
 */
export function adoptPooledReads(socket: net.Socket, onRead: PooledRead, relays: () => boolean, pool = CLIENT_READS): boolean {
  if (socket instanceof tls.TLSSocket || !READ_FIELDS) return false;
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: (b: Buffer) => void } })._handle;
  if (!handle || typeof handle.useUserBuffer !== 'function') return false;
  const { kBuffer, kBufferCb, kBufferGen } = READ_FIELDS;
  const s = socket as unknown as Record<symbol, unknown>;
  if (s[kBuffer] !== null || s[kBufferCb] !== null || s[kBufferGen] !== null) return false;
  const o = pooledReadOptions(onRead, relays, pool);
  const first = o.buffer();
  s[kBuffer] = first;
  s[kBufferCb] = o.callback;
  s[kBufferGen] = o.buffer;
  handle.useUserBuffer(first);
  socket.once('close', o.closed);
  return true;
}
