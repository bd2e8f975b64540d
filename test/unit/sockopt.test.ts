import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sendBufferBytes, sendBufferOf, sendBufferLog, UPSTREAM_SEND_BUFFER_BYTES, widenSendBuffer } from '../../src/relay/sockopt.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'dw-sockopt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** net.core.wmem_max, or undefined where this network namespace does not show it (older kernels, in a container). */
const wmemMax = (): number | undefined => {
  try {
    return Number(readFileSync('/proc/sys/net/core/wmem_max', 'utf8'));
  } catch {
    return undefined;
  }
};

function connectedPair(): Promise<{ client: net.Socket; close: () => void }> {
  const sock = path.join(dir, `s-${Math.random().toString(36).slice(2)}.sock`);
  const accepted: net.Socket[] = [];
  const server = net.createServer((s) => accepted.push(s));
  return new Promise((resolve) => {
    server.listen(sock, () => {
      const client = net.connect(sock, () =>
        resolve({
          client,
          close: () => {
            client.destroy();
            for (const s of accepted) s.destroy();
            server.close();
          },
        }),
      );
    });
  });
}

describe.runIf(process.platform === 'linux')('the send buffer of a daemon connection', () => {
  it('is widened to what the kernel allows, from its default', async () => {
    const { client, close } = await connectedPair();
    try {
      const fd = (client as unknown as { _handle: { fd: number } })._handle.fd;
      const before = sendBufferBytes(fd)!;
      expect(before).toBeGreaterThan(0);
      expect(widenSendBuffer(client)).toBeUndefined();
      const after = sendBufferOf(client)!;
      expect(after).toBe(sendBufferBytes(fd));
      expect(after).toBeGreaterThan(before);
      // Linux keeps twice what is asked (its bookkeeping), within twice net.core.wmem_max.
      const max = wmemMax();
      if (max !== undefined) expect(after).toBe(2 * Math.min(UPSTREAM_SEND_BUFFER_BYTES, max));
    } finally {
      close();
    }
  });

  it('says why when there is nothing to widen', () => {
    expect(widenSendBuffer(new net.Socket())).toBe('the socket has no file descriptor');
    expect(sendBufferOf(new net.Socket())).toBeUndefined();
    // A descriptor that is not a socket: the kernel's answer (ENOTSOCK, 88) is passed on.
    const notSocket = new net.Socket();
    Object.defineProperty(notSocket, '_handle', { value: { fd: openSync(path.join(dir, 'plain2'), 'w') } });
    try {
      expect(widenSendBuffer(notSocket)).toBe('setsockopt(SO_SNDBUF) failed: errno 88');
    } finally {
      closeSync((notSocket as unknown as { _handle: { fd: number } })._handle.fd);
    }
    const file = openSync(path.join(dir, 'plain'), 'w');
    try {
      expect(sendBufferBytes(file)).toBeUndefined();
    } finally {
      closeSync(file);
    }
  });
});

describe('the log line about the send buffer', () => {
  it('is information when the kernel keeps what was asked for, and a warning that says why otherwise', () => {
    expect(sendBufferLog({ bytes: 2 * UPSTREAM_SEND_BUFFER_BYTES })).toEqual({ level: 'info', msg: 'daemon connections have a wide send buffer', fields: { bytes: 2 * UPSTREAM_SEND_BUFFER_BYTES } });
    // A stock kernel: wmem_max 212,992 bytes, kept twice.
    expect(sendBufferLog({ bytes: 425_984 })).toEqual({
      level: 'warn',
      msg: 'the kernel keeps a smaller send buffer on daemon connections than asked (net.core.wmem_max): uploads may be slower',
      fields: { bytes: 425_984, wanted: 2 * UPSTREAM_SEND_BUFFER_BYTES },
    });
    expect(sendBufferLog({ unavailable: 'koffi could not call libc: nope' })).toEqual({
      level: 'warn',
      msg: 'the send buffer of daemon connections stays at the kernel default: uploads may be slower',
      fields: { reason: 'koffi could not call libc: nope' },
    });
  });
});
