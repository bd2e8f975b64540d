/**
 * Stage 5 for upgrades: `POST .../attach` and `POST /exec/{id}/start` with `Upgrade: tcp`.
 * http-proxy's WebSocket path only takes `GET` + `Upgrade: websocket`, so the upgrade is relayed
 * here: write the (authorised) request head and body to a fresh daemon connection, relay the
 * daemon's answer, and only once it is `101` turn the connection into a raw two-way pipe with
 * half-close, so that `echo x | docker run -i ...` ends when stdin does (pitfalls.md).
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { RequestContext } from './context.js';
import { onwardHeaders } from './forward.js';

export interface HijackResult {
  /** Set when the daemon could not be reached or the connection failed before any answer. */
  error?: Error;
}

const MAX_RESPONSE_HEAD = 64 * 1024;

export function createHijacker(socketPath: string) {
  return function hijack(ctx: RequestContext, rawHeaders: string[], client: Duplex, rest: Buffer, onDone: (r: HijackResult) => void): void {
    let finished = false;
    const done = (r: HijackResult) => {
      if (finished) return;
      finished = true;
      onDone(r);
    };
    const upstream = net.connect({ path: socketPath, allowHalfOpen: true });
    // The credential stays at the gateway; the body length is the one we relay. Connection and
    // Upgrade go on: they are what makes dockerd hijack.
    const headers = onwardHeaders(
      rawHeaders,
      (lower) => lower === 'authorization' || lower === 'proxy-authorization' || (ctx.body !== undefined && (lower === 'content-length' || lower === 'transfer-encoding')),
    );
    let lines = `${ctx.method} ${ctx.forwardUrl ?? ctx.url} HTTP/1.1\r\n`;
    for (let i = 0; i < headers.length; i += 2) lines += `${headers[i]}: ${headers[i + 1]}\r\n`;
    if (ctx.body) lines += `Content-Length: ${ctx.body.length}\r\n`;
    lines += '\r\n';
    upstream.write(lines);
    if (ctx.body && ctx.body.length > 0) upstream.write(ctx.body);

    let head: Buffer = Buffer.alloc(0);
    let upgraded = false;
    const onHead = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_RESPONSE_HEAD) upstream.destroy(new Error('daemon response head too large'));
        return;
      }
      upstream.off('data', onHead);
      upstream.pause();
      const statusLine = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
      ctx.status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 502);
      ctx.bytesOut += head.length - end - 4;
      client.write(head);
      if (ctx.status === 101) {
        upgraded = true;
        // From here on the connection is a raw stream in both directions.
        client.on('data', (c: Buffer) => {
          ctx.bytesIn += c.length;
        });
        // Bytes the client sent early (after the request, before the 101) belong to the stream.
        if (rest.length > 0) {
          ctx.bytesIn += rest.length;
          upstream.write(rest);
        }
        client.pipe(upstream);
      } else {
        // Not upgraded: relay the daemon's answer and close; no client bytes are tunnelled.
        upstream.on('end', () => client.end());
      }
      upstream.on('data', (c: Buffer) => {
        ctx.bytesOut += c.length;
      });
      upstream.pipe(client, { end: upgraded });
    };
    upstream.on('data', onHead);

    upstream.on('error', (err) => {
      if (ctx.status === undefined) {
        ctx.upstreamError = (err as NodeJS.ErrnoException).code ?? err.message;
        done({ error: err });
        return;
      }
      client.destroy();
    });
    client.on('error', () => upstream.destroy());
    // A session ends when both sides are closed; either side going away tears down the other.
    let closed = 0;
    const onClose = () => {
      closed++;
      if (closed === 1) {
        // Give the other side a moment to flush its half-closed direction before tearing down.
        if (upstream.destroyed && !client.destroyed) client.end();
        if (client.destroyed && !upstream.destroyed) upstream.destroy();
      }
      if (closed === 2) done({});
    };
    upstream.on('close', onClose);
    client.on('close', onClose);
  };
}
