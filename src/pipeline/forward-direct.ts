/**
 * The same forward stage as forward.ts, on Node's http client directly instead of http-proxy:
 * the request head is built once from the client's raw headers and written to a keep-alive
 * daemon connection, the answer is relayed with the same rules. Kept side by side with the
 * http-proxy forwarder so the benchmark can compare them (docs/performance.md).
 */
import http from 'node:http';
import type { Forwarder } from './forward.js';
import { NOT_FORWARDED, onwardHeaders, relayResponse } from './forward.js';

export function createDirectForwarder(socketPath: string): Forwarder {
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 64 });
  return {
    forward(ctx, req, res, onDone) {
      let finished = false;
      const done = (err?: Error) => {
        if (finished) return;
        finished = true;
        onDone(err);
      };
      const headers = onwardHeaders(req.rawHeaders, (lower) => NOT_FORWARDED.has(lower) || (ctx.body !== undefined && (lower === 'content-length' || lower === 'transfer-encoding')));
      if (ctx.body) headers.push('Content-Length', String(ctx.body.length));
      // A bodyless POST without Content-Length would go out chunked, which dockerd reads as a
      // body of unknown length (and refuses on `start`); say it is empty, as the client meant.
      else if (!ctx.bodySource.present && ctx.method !== 'GET' && ctx.method !== 'HEAD' && ctx.headers['content-length'] === undefined) headers.push('Content-Length', '0');
      const up = http.request({ socketPath, agent, method: ctx.method, path: ctx.forwardUrl ?? ctx.url, headers: headers as unknown as http.OutgoingHttpHeaders });
      up.on('response', (proxyRes) => {
        relayResponse(ctx, proxyRes, res);
        proxyRes.on('error', () => res.destroy());
      });
      up.on('error', (err) => {
        ctx.upstreamError ??= (err as NodeJS.ErrnoException).code ?? err.message;
        done(err);
      });
      // Stop the daemon-side work when the client goes away mid-stream (`logs -f` closed).
      res.on('close', () => {
        if (!res.writableFinished) {
          if (ctx.status !== undefined) ctx.upstreamError ??= 'client_closed';
          up.destroy();
        }
        done();
      });
      if (ctx.body) {
        up.end(ctx.body);
      } else if (!ctx.bodySource.present) {
        // No body (most requests): nothing to pipe, no listeners to set up and tear down.
        up.end();
      } else {
        req.on('data', (chunk: Buffer) => {
          ctx.bytesIn += chunk.length;
        });
        req.on('error', () => up.destroy());
        req.pipe(up);
      }
    },
    close() {
      agent.destroy();
    },
  };
}
