import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sendBufferBytes, UPSTREAM_SEND_BUFFER_BYTES, widenSendBuffer } from '../../src/relay/sockopt.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'dw-sockopt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What Linux keeps for SO_SNDBUF = `asked`: twice the value, within twice net.core.wmem_max. */
const kept = (asked: number) => 2 * Math.min(asked, Number(readFileSync('/proc/sys/net/core/wmem_max', 'utf8')));
const wmemDefault = () => Number(readFileSync('/proc/sys/net/core/wmem_default', 'utf8'));

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
      expect(sendBufferBytes(fd)).toBe(wmemDefault());
      expect(widenSendBuffer(client)).toEqual({ bytes: kept(UPSTREAM_SEND_BUFFER_BYTES) });
      expect(sendBufferBytes(fd)).toBe(kept(UPSTREAM_SEND_BUFFER_BYTES));
      // The kernel's own bookkeeping doubles it: not what was asked for, and not the default.
      expect(kept(UPSTREAM_SEND_BUFFER_BYTES)).not.toBe(wmemDefault());
    } finally {
      close();
    }
  });

  it('says why when there is nothing to widen', () => {
    expect(widenSendBuffer(new net.Socket())).toEqual({ unavailable: 'the socket has no file descriptor' });
    const file = openSync(path.join(dir, 'plain'), 'w');
    try {
      expect(sendBufferBytes(file)).toBeUndefined();
    } finally {
      closeSync(file);
    }
  });
});
