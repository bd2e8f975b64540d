/**
 * Stage 5: stream an allowed request to dockerd's unix socket.
 *
 * http-proxy moves the bytes; we keep three things for ourselves (pitfalls.md):
 * - a keep-alive agent with no socket limit: without an agent http-proxy sends
 *   `Connection: close` and loses answers to EPIPE, and a bounded pool makes `start` queue
 *   behind a `wait` that holds its socket;
 * - writing the response head ourselves and flushing it at once for streamed answers: `docker run`
 *   waits for the headers of `/wait` before it sends `start`, and Node holds headers until the
 *   first body byte;
 * - no timeouts anywhere: `logs -f`, `events` and long uploads last as long as they last.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import httpProxy from 'http-proxy';
import type { RequestContext, ResponseFilter } from './context.js';
import type { Rejection } from '../types.js';
import { collectList, createEventFilter } from './listfilter.js';
import { rejectHttp } from './reject.js';

export interface Forwarder {
  /** Calls `onDone` once, when the response has ended or failed (`err` set when nothing could be relayed). */
  forward(ctx: RequestContext, req: IncomingMessage, res: ServerResponse, onDone: (err?: Error) => void): void;
  close(): void;
}

// Hop-by-hop headers describe one connection (client-gateway or gateway-daemon), not the message.
const CONNECTION_HEADERS = ['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'te', 'trailer', 'proxy-authorization'];
/** Headers of the daemon's answer that are not relayed (Node frames the answer itself). */
export const HOP_BY_HOP = new Set([...CONNECTION_HEADERS, 'transfer-encoding']);
/** Request headers never sent to the daemon: hop-by-hop ones, and the caller's credential. */
export const NOT_FORWARDED = new Set([...CONNECTION_HEADERS, 'authorization']);

/**
 * The client's header fields to send on to the daemon, name and value in turn, without those whose
 * lower-case name `drop` picks, and with a Host when the client sent none (`direct` and
 * `http-proxy` clients: the relay forwards a request in its own HTTP version). The request goes
 * out as HTTP/1.1, which must name a host (dockerd answers 400 without one), while an HTTP/1.0
 * client need not (an HTTP/1.1 request without Host is refused before it gets here). Node names
 * `localhost` when it adds the header itself.
 */
export function onwardHeaders(raw: readonly string[], drop: (lower: string) => boolean): string[] {
  const out: string[] = [];
  let host = false;
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (drop(lower)) continue;
    if (lower === 'host') host = true;
    out.push(raw[i]!, raw[i + 1]!);
  }
  if (!host) out.push('Host', 'localhost');
  return out;
}

export function createForwarder(socketPath: string): Forwarder {
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 64 });
  const proxy = httpProxy.createProxyServer({
    target: { socketPath } as unknown as string,
    agent,
    selfHandleResponse: true,
    // Forward req.url as received: http-proxy would otherwise re-parse it with the legacy
    // url.parse, which rewrites some characters - the daemon must route the path we classified.
    toProxy: true,
    prependPath: false,
    xfwd: false,
    ws: false,
  });
  const contexts = new WeakMap<IncomingMessage, RequestContext>();

  proxy.on('proxyReq', (proxyReq, req, res) => {
    // Stop the daemon-side work when the client goes away mid-stream (`logs -f` closed):
    // Node no longer emits 'aborted' for a request whose body had already ended.
    res.on('close', () => {
      if (!res.writableFinished) proxyReq.destroy();
    });
  });

  proxy.on('proxyRes', (proxyRes, req, res) => {
    const ctx = contexts.get(req);
    if (ctx) relayResponse(ctx, proxyRes, res);
  });

  return {
    forward(ctx, req, res, onDone) {
      contexts.set(req, ctx);
      if (ctx.forwardUrl) req.url = ctx.forwardUrl;
      let finished = false;
      const done = (err?: Error) => {
        if (finished) return;
        finished = true;
        onDone(err);
      };
      const options: httpProxy.ServerOptions = {};
      if (ctx.body) {
        // The inspected bytes, not a second read of the client: what the policy saw is sent.
        options.buffer = Readable.from([ctx.body]) as unknown as httpProxy.ServerOptions['buffer'];
        req.headers['content-length'] = String(ctx.body.length);
        delete req.headers['transfer-encoding'];
      } else {
        req.on('data', (chunk: Buffer) => {
          ctx.bytesIn += chunk.length;
        });
      }
      res.on('close', () => {
        if (!res.writableFinished && ctx.status !== undefined) ctx.upstreamError ??= 'client_closed';
        done();
      });
      proxy.web(req, res, options, (err) => {
        ctx.upstreamError = (err as NodeJS.ErrnoException).code ?? err.message;
        done(err);
      });
    },
    close() {
      agent.destroy();
      proxy.close();
    },
  };
}

/** Relays the daemon's answer: its status and end-to-end headers, then its body as it arrives. */
export function relayResponse(ctx: RequestContext, proxyRes: IncomingMessage, res: ServerResponse): void {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(proxyRes.headers)) {
    if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
  }
  const status = proxyRes.statusCode ?? 502;
  ctx.status = status;
  if (ctx.responseFilter && status === 200) return relayFiltered(ctx, ctx.responseFilter, proxyRes, res, headers);
  res.writeHead(status, proxyRes.statusMessage, headers);
  const length = proxyRes.headers['content-length'];
  if (length === undefined) {
    // A streamed answer must show its head even when no body follows for a long time (`wait`
    // sends its body when the container exits). Flushing at the end of this turn of the event
    // loop still lets a head go out in one write with a body that is already here (lists).
    // (`headersSent` is already true after writeHead; what tells is whether a body byte went out.)
    setImmediate(() => {
      if (ctx.bytesOut === 0 && !res.destroyed && !res.writableEnded) res.flushHeaders();
    });
    proxyRes.on('data', (chunk: Buffer) => {
      ctx.bytesOut += chunk.length;
    });
  } else {
    // A sized answer: count what was relayed when it ends, without a listener per chunk.
    proxyRes.once('end', () => {
      ctx.bytesOut = Number(length);
    });
  }
  proxyRes.pipe(res);
}

function relayFiltered(ctx: RequestContext, { keep, ownership }: ResponseFilter, proxyRes: IncomingMessage, res: ServerResponse, headers: Record<string, string | string[]>): void {
  const action = ctx.classification!.action;
  if (action === 'system.events') {
    delete headers['content-length'];
    res.writeHead(200, proxyRes.statusMessage, headers);
    res.flushHeaders();
    const filter = createEventFilter(keep, ownership);
    filter.on('data', (c: Buffer) => {
      ctx.bytesOut += c.length;
    });
    proxyRes.pipe(filter).pipe(res);
    return;
  }
  const list = collectList(action, keep, ownership);
  const fail = (r: Rejection) => {
    ctx.status = r.status;
    ctx.upstreamError = r.message;
    proxyRes.destroy();
    rejectHttp(res, r, { head: false });
  };
  proxyRes.on('data', (c: Buffer) => {
    if (res.headersSent) return;
    const tooLarge = list.push(c);
    if (tooLarge) fail(tooLarge);
  });
  proxyRes.on('end', () => {
    if (res.headersSent) return;
    const filtered = list.finish();
    if (!Buffer.isBuffer(filtered)) return fail(filtered);
    headers['content-length'] = String(filtered.length);
    res.writeHead(200, proxyRes.statusMessage, headers);
    ctx.bytesOut = filtered.length;
    res.end(filtered);
  });
}
