/**
 * A wider send buffer on the gateway's connections to the daemon (issue 7, uploads).
 *
 * A unix stream socket holds at most its sender's SO_SNDBUF in flight (net.core.wmem_default,
 * 208 KiB here), and Linux reports it writable again only once three quarters of that are read
 * (`unix_writable`): ~52 KiB, which dockerd unpacks from a `docker cp` in ~150 µs. The gateway must
 * be scheduled and refill the socket within that time, while it also reads the client's next 1 MiB
 * from TCP; when it is late, dockerd waits for it. A 4 MiB buffer gives it milliseconds. Measured
 * with 100 MiB uploads (12 rounds, same run): 0.82x of the direct socket at the default and 0.91x
 * with 4 MiB, the gateway's CPU per GB 858 -> 668 ms (fewer wake-ups); HAProxy 0.82x alongside.
 *
 * Node has no API for SO_SNDBUF on a stream socket (only `dgram` has one), so `setsockopt` is
 * called through koffi, an FFI library that ships prebuilt binaries. This only tunes: when koffi
 * or libc cannot be loaded, or the kernel keeps a smaller buffer, the gateway works as before and
 * says so once at start-up. SO_SNDBUF (not SO_SNDBUFFORCE) is asked for, so the host's cap
 * applies: Linux keeps twice what is asked, up to twice net.core.wmem_max (212,992 bytes on a stock
 * kernel: raise it to 2 MiB for the full width, docs/operations.md).
 */
import { createRequire } from 'node:module';
import type net from 'node:net';

/** Asked for per daemon connection: Linux keeps twice this (4 MiB) when wmem_max allows it. */
export const UPSTREAM_SEND_BUFFER_BYTES = 2 * 1024 * 1024;

// <asm-generic/socket.h>: the same on every Linux architecture Node runs on (x86, arm, riscv).
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;

interface SockOpt {
  set(fd: number, bytes: number): boolean;
  get(fd: number): number | undefined;
}

/** undefined: not tried yet; a string: why socket options cannot be set here. */
let sockopt: SockOpt | string | undefined;

function load(): SockOpt | string {
  if (process.platform !== 'linux') return `socket options are only set on Linux (this is ${process.platform})`;
  try {
    type Fn = (...args: unknown[]) => number;
    const koffi = createRequire(import.meta.url)('koffi') as { load(lib: string): { func(decl: string): Fn } };
    const libc = koffi.load('libc.so.6');
    const setsockopt = libc.func('int setsockopt(int fd, int level, int name, _In_ int *value, uint32_t len)');
    const getsockopt = libc.func('int getsockopt(int fd, int level, int name, _Out_ int *value, _Inout_ uint32_t *len)');
    return {
      set: (fd, bytes) => setsockopt(fd, SOL_SOCKET, SO_SNDBUF, [bytes], 4) === 0,
      get: (fd) => {
        const value = [0];
        return getsockopt(fd, SOL_SOCKET, SO_SNDBUF, value, [4]) === 0 ? value[0] : undefined;
      },
    };
  } catch (err) {
    return `koffi could not call libc: ${(err as Error).message}`;
  }
}

function api(): SockOpt | string {
  sockopt ??= load();
  return sockopt;
}

/** The file descriptor under a connected net.Socket (Node keeps it on the handle; -1 before). */
function fdOf(socket: net.Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

export type SendBufferResult = { bytes: number } | { unavailable: string };

/** Asks for `bytes` of send buffer on a connected socket; says what the kernel kept, or why not. */
export function widenSendBuffer(socket: net.Socket, bytes = UPSTREAM_SEND_BUFFER_BYTES): SendBufferResult {
  const s = api();
  if (typeof s === 'string') return { unavailable: s };
  const fd = fdOf(socket);
  if (fd === undefined) return { unavailable: 'the socket has no file descriptor' };
  if (!s.set(fd, bytes)) return { unavailable: 'setsockopt(SO_SNDBUF) failed' };
  return { bytes: s.get(fd) ?? 0 };
}

/** SO_SNDBUF of a file descriptor, or undefined when it is not a socket (or cannot be read). */
export function sendBufferBytes(fd: number): number | undefined {
  const s = api();
  return typeof s === 'string' ? undefined : s.get(fd);
}
