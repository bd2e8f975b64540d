import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { adoptPooledReads, Lease, pooledReadOptions, takeBuffer, type PooledRead } from '../../src/relay/pool.js';

describe('Lease', () => {
  it('returns its buffer to the pool only once every write holding it is done', () => {
    const b = takeBuffer();
    const lease = new Lease(b);
    const first = lease.hold();
    const second = lease.hold();
    lease.release();
    first();
    expect(takeBuffer()).not.toBe(b);
    second();
    expect(takeBuffer()).toBe(b);
  });

  it('never returns a buffer whose write failed: Node may still hold it', () => {
    const b = takeBuffer();
    const lease = new Lease(b);
    const write = lease.hold();
    lease.release();
    write(new Error('EPIPE'));
    expect(takeBuffer()).not.toBe(b);
  });
});

/** Sends `data` from one side of a loopback connection and collects what `onRead` gets on the other. */
async function transfer(data: Buffer, side: 'accepted' | 'connected'): Promise<{ got: Buffer; pooledReads: number; reads: number }> {
  const got: Buffer[] = [];
  let pooledReads = 0;
  let reads = 0;
  const onRead: PooledRead = (bytes, lease) => {
    reads++;
    if (lease) pooledReads++;
    // What a pooled read may not do is keep the bytes: a copy is kept, as the relay does.
    got.push(Buffer.from(bytes));
  };
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const server = net.createServer((s) => {
    if (side === 'accepted') {
      expect(adoptPooledReads(s, onRead, () => true)).toBe(true);
      s.on('end', () => {
        done();
        s.end();
      });
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
    const c = net.connect({ port, host: '127.0.0.1', onread: pooledReadOptions(onRead, () => true) });
    c.on('end', () => {
      done();
      c.end();
    });
  }
  await finished;
  server.close();
  return { got: Buffer.concat(got), pooledReads, reads };
}

describe('pooled reads', () => {
  // If Node's socket internals change, the relay silently falls back to Node's own reads (and
  // its GC cost, issue 7): this test is where that shows.
  it.each(['accepted', 'connected'] as const)('deliver every byte of a busy %s socket, the busy reads into pooled buffers', async (side) => {
    const data = randomBytes(8 * 1024 * 1024);
    const r = await transfer(data, side);
    expect(r.got.equals(data)).toBe(true);
    expect(r.pooledReads).toBeGreaterThan(0);
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
    const opts = pooledReadOptions(() => {
      throw new Error('a bug in the reader');
    }, () => true);
    const buf = takeBuffer();
    const callback = opts.callback as (n: number, b: Uint8Array) => boolean;
    expect(() => callback(buf.length, buf)).toThrow('a bug in the reader');
    expect(takeBuffer()).not.toBe(buf);
  });
});

describe('TLS sockets', () => {
  it('keep Node\'s own reads (they decrypt into buffers of their own)', () => {
    const s = new tls.TLSSocket(new net.Socket());
    expect(adoptPooledReads(s, () => {}, () => true)).toBe(false);
    s.destroy();
  });
});
