import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { adoptPooledReads, BufferPool, CLIENT_READS, connectPooled, DAEMON_READS, Lease, pooledReadOptions, type PooledRead } from '../../src/relay/pool.js';

const pool = new BufferPool(64 * 1024, 8, 4);

/** A pooled buffer; the tests run well under the lending bound. */
function take(): Buffer {
  const b = pool.take();
  if (!b) throw new Error('the pool lent every buffer');
  return b;
}

describe('Lease', () => {
  it('returns its buffer to the pool only once every write holding it is done', () => {
    const lent = pool.lent;
    const b = take();
    const lease = new Lease(b, pool);
    const first = lease.hold();
    const second = lease.hold();
    lease.release();
    first();
    expect(pool.lent).toBe(lent + 1);
    second();
    expect(pool.lent).toBe(lent);
    expect(take()).toBe(b);
    new Lease(b, pool).release();
  });

  it('never returns a buffer whose write failed: Node may still hold it', () => {
    const lent = pool.lent;
    const b = take();
    const lease = new Lease(b, pool);
    const write = lease.hold();
    lease.release();
    write(new Error('EPIPE'));
    // No longer lent (the GC has it), and never handed out again.
    expect(pool.lent).toBe(lent);
    const next = take();
    expect(next === b).toBe(false);
    new Lease(next, pool).release();
  });
});

describe('the lending bound', () => {
  it.each([
    ['client', CLIENT_READS, 48, 1024 * 1024],
    ['daemon', DAEMON_READS, 256, 64 * 1024],
  ] as const)('the %s pool lends at most %i buffers at once; past that the caller reads into the shared buffer', (_name, p, max, bytes) => {
    const taken: Buffer[] = [];
    for (let b = p.take(); b && taken.length < 1000; b = p.take()) taken.push(b);
    // What idle sockets can pin after a burst stays bounded: 48 MiB for the clients', 16 MiB for the daemon's.
    expect(taken.length).toBe(max);
    expect(taken.every((b) => b.length === bytes)).toBe(true);
    expect(p.take()).toBeUndefined();
    new Lease(taken.pop()!, p).release();
    const again = p.take();
    expect(again).toBeDefined();
    taken.push(again!);
    for (const b of taken) new Lease(b, p).release();
    expect(p.lent).toBe(0);
  });
});

/** Sends `data` from one side of a loopback connection and collects what `onRead` gets on the other. */
async function transfer(data: Buffer, side: 'accepted' | 'connected'): Promise<{ got: Buffer; pooledReads: number; reads: number; largest: number }> {
  const got: Buffer[] = [];
  let pooledReads = 0;
  let reads = 0;
  let largest = 0;
  const onRead: PooledRead = (bytes, lease) => {
    reads++;
    largest = Math.max(largest, bytes.length);
    if (lease) pooledReads++;
    // What a pooled read may not do is keep the bytes: a copy is kept, as the relay does.
    got.push(Buffer.from(bytes));
  };
  let closed!: () => void;
  const finished = new Promise<void>((r) => (closed = r));
  const server = net.createServer((s) => {
    if (side === 'accepted') {
      expect(adoptPooledReads(s, onRead, () => true)).toBe(true);
      s.on('end', () => s.end());
      s.on('close', () => closed());
    } else {
      s.end(data);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  if (side === 'accepted') {
    const c = net.connect({ port, host: '127.0.0.1' }, () => c.end(data));
    c.resume();
  } else {
    const c = connectPooled({ port, host: '127.0.0.1' }, onRead, () => true);
    c.on('end', () => c.end());
    c.on('close', () => closed());
  }
  await finished;
  server.close();
  return { got: Buffer.concat(got), pooledReads, reads, largest };
}

describe('the spare bound', () => {
  it('lends a read that is only expected at most half the pool, and the busy ones the rest', () => {
    const taken: Buffer[] = [];
    for (let b = DAEMON_READS.takeSpare(); b && taken.length < 1000; b = DAEMON_READS.takeSpare()) taken.push(b);
    // 256 idle keep-alive connections cannot take every buffer from the busy streams.
    expect(taken.length).toBe(128);
    for (let b = DAEMON_READS.take(); b && taken.length < 1000; b = DAEMON_READS.take()) taken.push(b);
    expect(taken.length).toBe(256);
    for (const b of taken) new Lease(b, DAEMON_READS).release();
    expect(DAEMON_READS.lent).toBe(0);
  });
});

describe('pooled reads', () => {
  // If Node's socket internals change, the relay silently falls back to Node's own reads (and
  // its GC cost, issue 7): this test is where that shows.
  it.each(['accepted', 'connected'] as const)('deliver every byte of a busy %s socket, the busy reads into pooled buffers', async (side) => {
    const data = randomBytes(8 * 1024 * 1024);
    const p = side === 'accepted' ? CLIENT_READS : DAEMON_READS;
    const lent = p.lent;
    const r = await transfer(data, side);
    expect(r.got.equals(data)).toBe(true);
    expect(r.pooledReads).toBeGreaterThan(0);
    if (side === 'accepted') {
      // A client's busy reads take more than Node's 64 KiB at once (fewer reads, fewer window updates).
      expect(r.largest).toBeGreaterThan(64 * 1024);
    } else {
      // The daemon's stay at 64 KiB: its socket never holds much more.
      expect(r.largest).toBeLessThanOrEqual(64 * 1024);
    }
    // The closed socket gave back the buffer it was waiting to read into.
    expect(p.lent).toBe(lent);
  });

  it.each([
    ['accepted', CLIENT_READS],
    ['connected', DAEMON_READS],
  ] as const)('a closed socket (%s) gives back the pooled buffer it was waiting to read into', async (side, p) => {
    const lent = p.lent;
    let received = 0;
    const count = (bytes: Buffer) => {
      received += bytes.length;
    };
    // `reader` reads with pooled buffers, `writer` sends it bursts.
    const sockets = new Promise<{ reader: net.Socket; writer: net.Socket }>((resolve) => {
      const server = net.createServer((s) => {
        server.close();
        if (side === 'accepted') {
          adoptPooledReads(s, count, () => true);
          resolve({ reader: s, writer: c });
        } else {
          resolve({ reader: c, writer: s });
        }
      });
      let c!: net.Socket;
      server.listen(0, '127.0.0.1', () => {
        const to = { host: '127.0.0.1', port: (server.address() as net.AddressInfo).port };
        c = side === 'accepted' ? net.connect(to) : connectPooled(to, count, () => true);
      });
    });
    const { reader, writer } = await sockets;
    writer.on('error', () => {});
    const closed = new Promise((r) => reader.once('close', r));
    // Bursts until the last read of one was busy (a read's size depends on how the bytes arrive),
    // then the writer goes quiet with the connection open.
    let sent = 0;
    for (let i = 0; i < 10 && p.lent === lent; i++) {
      writer.write(randomBytes(256 * 1024));
      sent += 256 * 1024;
      while (received < sent) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 20));
    }
    // The socket waits for its next read with a pooled buffer of its own.
    expect(p.lent).toBe(lent + 1);
    reader.destroy();
    await closed;
    expect(p.lent).toBe(lent);
    writer.destroy();
  });

  it('report a read that did not fill its buffer as the socket\'s last of the turn: libuv reads the socket no more then', async () => {
    // The relay flushes what it batched for the other side at such a read (relay/server.ts
    // WriteBatch); if libuv read on after a short read, those bytes would go out in pieces.
    let turn = 0;
    let ticking = true;
    const tick = (): void => {
      turn++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const reads: { n: number; last: boolean; turn: number }[] = [];
    const data = randomBytes(4 * 1024 * 1024);
    let received = 0;
    const server = net.createServer((s) => {
      server.close();
      s.end(data);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise<void>((resolve, reject) => {
      const c = connectPooled(
        { host: '127.0.0.1', port },
        (bytes, _lease, last) => {
          reads.push({ n: bytes.length, last, turn });
          received += bytes.length;
        },
        () => true,
      );
      c.on('end', () => c.end());
      c.on('close', () => resolve());
      c.on('error', reject);
    });
    ticking = false;
    expect(received).toBe(data.length);
    // Every read here is into a 64 KiB buffer (the daemon's pool, or the shared one).
    for (const r of reads) expect(r.last).toBe(r.n < 64 * 1024);
    expect(reads.some((r) => r.last)).toBe(true);
    for (let i = 1; i < reads.length; i++) {
      if (reads[i - 1]!.last) expect(reads[i]!.turn).toBeGreaterThan(reads[i - 1]!.turn);
    }
    // Full reads do follow each other within one turn: what batching gathers.
    expect(reads.some((r, i) => i > 0 && !reads[i - 1]!.last && r.turn === reads[i - 1]!.turn)).toBe(true);
  });

  it('read into a pooled buffer, even when small, while the caller expects bytes it will relay', async () => {
    // The daemon's answer to a request: its first read is written on without a copy.
    const server = net.createServer((s) => s.end(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]')));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const lent = DAEMON_READS.lent;
    for (const expects of [true, false]) {
      const leases: boolean[] = [];
      await new Promise<void>((resolve, reject) => {
        const c = connectPooled({ host: '127.0.0.1', port }, (_bytes, lease) => leases.push(lease !== undefined), () => true, DAEMON_READS, () => expects);
        c.on('end', () => c.end());
        c.on('close', () => resolve());
        c.on('error', reject);
      });
      expect(leases).toEqual([expects]);
    }
    server.close();
    expect(DAEMON_READS.lent).toBe(lent);
  });

  it('copies reads out of the shared buffer while the socket is not relaying', async () => {
    const data = randomBytes(1024 * 1024);
    const got: Buffer[] = [];
    let leases = 0;
    const server = net.createServer((s) => {
      adoptPooledReads(
        s,
        (bytes, lease) => {
          if (lease) leases++;
          got.push(bytes);
        },
        () => false,
      );
      s.on('end', () => s.end());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => {
      const c = net.connect({ port, host: '127.0.0.1' }, () => c.end(data));
      c.resume();
      c.on('close', () => resolve());
    });
    server.close();
    // Kept without copying (got.push(bytes)): they are the callee's own, so still intact.
    expect(leases).toBe(0);
    expect(Buffer.concat(got).equals(data)).toBe(true);
  });
});

describe('a reader that throws', () => {
  it('does not return its buffer to the pool: the socket still reads into it', () => {
    const opts = pooledReadOptions(
      () => {
        throw new Error('a bug in the reader');
      },
      () => true,
      pool,
    );
    const lent = pool.lent;
    const buf = take();
    const callback = opts.callback as (n: number, b: Uint8Array) => boolean;
    expect(() => callback(buf.length, buf)).toThrow('a bug in the reader');
    // No longer counted as lent (the GC has it), and never handed out again.
    expect(pool.lent).toBe(lent);
    const next = take();
    expect(next === buf).toBe(false);
    new Lease(next, pool).release();
  });
});

describe('TLS sockets', () => {
  it('keep Node\'s own reads (they decrypt into buffers of their own)', () => {
    const s = new tls.TLSSocket(new net.Socket());
    expect(adoptPooledReads(s, () => {}, () => true)).toBe(false);
    s.destroy();
  });
});
