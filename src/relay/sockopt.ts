/**
 * A wider send buffer on the gateway's connections to the daemon (issue 7, uploads).
 *
 * A unix stream socket holds at most its sender's SO_SNDBUF in flight (net.core.wmem_default,
 * 208 KiB here), and Linux reports it writable again only once three quarters of that are read
 * (`unix_writable`): ~52 KiB, which dockerd unpacks in ~150 µs at the direct socket's ~370 MB/s
 * here (worked out from that rate, not timed). The gateway must
 * be scheduled and refill the socket within that time, while it also reads the client's next 1 MiB
 * from TCP; when it is late, dockerd waits for it. A 4 MiB buffer gives it milliseconds. Measured
 * with 100 MiB uploads (12 rounds, same run, against the code before): 0.81x of the direct socket
 * before and 0.96x after, the gateway's CPU per GB 763 -> 668 ms (fewer wake-ups); HAProxy 0.84x.
 *
 * Node has no API for SO_SNDBUF on a stream socket (only `dgram` has one), so `setsockopt` is
 * called through koffi, an FFI library that ships prebuilt binaries. This only tunes: when koffi
 * or libc cannot be loaded, or the kernel keeps a smaller buffer, the gateway works as before and
 * says so once, at the first upload. SO_SNDBUF (not SO_SNDBUFFORCE) is asked for, so the host's
 * cap applies: Linux keeps twice what is asked, up to twice net.core.wmem_max (212,992 bytes on a
 * stock kernel: raise it to 2 MiB for the full width, docs/operations-deploy.md).
 *
 * Only a connection that carries a streamed request body (an upload) asks for it: the buffer is
 * kernel memory, which a long session whose reader stalls (an attach whose container does not read
 * its stdin) would otherwise pin, 4 MiB instead of 208 KiB, for as long as it lasts.
 */
import { createRequire } from 'node:module';
import type net from 'node:net';

/** Asked for per daemon connection: Linux keeps twice this (4 MiB) when wmem_max allows it. */
export const UPSTREAM_SEND_BUFFER_BYTES = 2 * 1024 * 1024;

// <asm-generic/socket.h>, which x86, arm and riscv Linux use.
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;

interface SockOpt {
  /** 0, or the errno of the failed call. */
  set(fd: number, bytes: number): number;
  get(fd: number): number | undefined;
}

/** undefined: not loaded yet; a string: why socket options cannot be set here. */
let sockopt: SockOpt | string | undefined;

function load(): SockOpt | string {
  if (process.platform !== 'linux') return `socket options are only set on Linux (this is ${process.platform})`;
  try {
    type Fn = (...args: unknown[]) => number;
    const koffi = createRequire(import.meta.url)('koffi') as { load(lib: string): { func(decl: string): Fn }; errno(): number };
    const libc = koffi.load('libc.so.6');
    // Plain pointers to reused buffers: ~0.4 µs a call, against ~0.9 µs for koffi's array marshalling.
    const setsockopt = libc.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)');
    const getsockopt = libc.func('int getsockopt(int fd, int level, int name, void *value, void *len)');
    const value = Buffer.alloc(4);
    const len = Buffer.alloc(4);
    return {
      set: (fd, bytes) => {
        value.writeInt32LE(bytes);
        return setsockopt(fd, SOL_SOCKET, SO_SNDBUF, value, 4) === 0 ? 0 : koffi.errno();
      },
      get: (fd) => {
        len.writeUInt32LE(4);
        return getsockopt(fd, SOL_SOCKET, SO_SNDBUF, value, len) === 0 ? value.readInt32LE() : undefined;
      },
    };
  } catch (err) {
    return `koffi could not call libc: ${(err as Error).message}`;
  }
}

/**
 * Loads koffi and libc (~30 ms, so at start-up rather than in the first request); says why
 * socket options cannot be set here, or undefined when they can.
 */
export function loadSockopt(): string | undefined {
  sockopt ??= load();
  return typeof sockopt === 'string' ? sockopt : undefined;
}

/** The file descriptor under a net.Socket (Node keeps it on the handle from connect() on). */
function fdOf(socket: net.Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** Asks for `bytes` of send buffer on a socket (connecting or connected). Returns why it could not, or undefined. */
export function widenSendBuffer(socket: net.Socket, bytes = UPSTREAM_SEND_BUFFER_BYTES): string | undefined {
  const why = loadSockopt();
  if (why !== undefined) return why;
  const fd = fdOf(socket);
  if (fd === undefined) return 'the socket has no file descriptor';
  try {
    const errno = (sockopt as SockOpt).set(fd, bytes);
    return errno === 0 ? undefined : `setsockopt(SO_SNDBUF) failed: errno ${errno}`;
  } catch (err) {
    // A tuning must not take a request down with it.
    return `setsockopt(SO_SNDBUF) failed: ${(err as Error).message}`;
  }
}

/** SO_SNDBUF of a file descriptor as the kernel keeps it, or undefined when it is not a socket (or cannot be read). */
export function sendBufferBytes(fd: number): number | undefined {
  if (loadSockopt() !== undefined) return undefined;
  try {
    return (sockopt as SockOpt).get(fd);
  } catch {
    return undefined;
  }
}

/** SO_SNDBUF of a connected socket, or undefined. */
export function sendBufferOf(socket: net.Socket): number | undefined {
  const fd = fdOf(socket);
  return fd === undefined ? undefined : sendBufferBytes(fd);
}

/** What the relay reports of its first daemon connection (RelayOptions.onSendBuffer). */
export type SendBufferReport = { bytes: number } | { unavailable: string };

/** The log line about the first daemon connection's send buffer: info when it got what was asked for. */
export function sendBufferLog(r: SendBufferReport): { level: 'info' | 'warn'; msg: string; fields: Record<string, unknown> } {
  if ('unavailable' in r) return { level: 'warn', msg: 'the send buffer of daemon connections stays at the kernel default: uploads may be slower', fields: { reason: r.unavailable } };
  const wanted = 2 * UPSTREAM_SEND_BUFFER_BYTES;
  if (r.bytes >= wanted) return { level: 'info', msg: 'daemon connections have a wide send buffer', fields: { bytes: r.bytes } };
  return { level: 'warn', msg: 'the kernel keeps a smaller send buffer on daemon connections than asked (net.core.wmem_max): uploads may be slower', fields: { bytes: r.bytes, wanted } };
}
