/**
 * The ordered stages, and the two thin adapters that run them: the plain HTTP handler and the
 * server's 'upgrade' handler (docker attach/exec arrive as HTTP upgrades, outside any router).
 * Both build the same RequestContext and run the same stage list, so a hijacked request is
 * authenticated and authorised exactly like a plain one.
 *
 * The gateway listener is a bare node:http server rather than Express: Express's router and
 * req/res decoration cost ~260 µs per request here (pitfalls.md) and the gateway uses none of
 * it. Express serves the metrics/health listener, where it earns its keep.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { rejection } from './errors.js';
import type { Rejection } from './types.js';
import { nextRequestId, type BodySource, type RequestContext, type Stage } from './pipeline/context.js';
import type { Forwarder } from './pipeline/forward.js';
import type { createHijacker } from './pipeline/hijack.js';
import type { Observer } from './pipeline/observe.js';
import { rejectHttp, rejectSocket } from './pipeline/reject.js';

export interface GatewayDeps {
  /** authenticate, classify, inspect, authorize - in that order. */
  stages: readonly Stage[];
  forwarder: Forwarder;
  hijack: ReturnType<typeof createHijacker>;
  observer: Observer;
  onError?: (err: unknown, ctx: RequestContext) => void;
}

function hasBody(headers: IncomingMessage['headers']): boolean {
  if (headers['transfer-encoding'] !== undefined) return true;
  const cl = headers['content-length'];
  return cl !== undefined && cl !== '0';
}

function newContext(req: IncomingMessage, upgrade: boolean, bodySource: BodySource): RequestContext {
  return {
    id: nextRequestId(),
    startNs: process.hrtime.bigint(),
    remote: req.socket.remoteAddress ?? '',
    socket: req.socket,
    method: req.method ?? 'GET',
    url: req.url ?? '/',
    headers: req.headers,
    upgrade,
    bodySource,
    bytesIn: 0,
    bytesOut: 0,
  };
}

/** Runs the stages in order; stays synchronous until a stage actually needs to wait. */
function runStages(stages: readonly Stage[], ctx: RequestContext, i = 0): Rejection | undefined | Promise<Rejection | undefined> {
  for (; i < stages.length; i++) {
    const r = stages[i]!(ctx);
    if (r instanceof Promise) {
      const next = i + 1;
      return r.then((rej) => rej ?? runStages(stages, ctx, next));
    }
    if (r) return r;
  }
  return undefined;
}

function httpBodySource(req: IncomingMessage): BodySource {
  return {
    present: hasBody(req.headers),
    read(limit) {
      return new Promise((resolve) => {
        const declared = Number(req.headers['content-length'] ?? 0);
        if (declared > limit) {
          resolve(rejection('body_too_large', `request body of ${declared} bytes is larger than limits.inspectedBodyBytes (${limit}); it cannot be inspected`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        const onData = (c: Buffer) => {
          size += c.length;
          if (size > limit) {
            cleanup();
            req.pause();
            resolve(rejection('body_too_large', `request body is larger than limits.inspectedBodyBytes (${limit}); it cannot be inspected`));
            return;
          }
          chunks.push(c);
        };
        const onEnd = () => {
          cleanup();
          resolve(Buffer.concat(chunks, size));
        };
        const onAbort = () => {
          cleanup();
          resolve(rejection('bad_framing', 'the request body ended early'));
        };
        const cleanup = () => {
          req.off('data', onData);
          req.off('end', onEnd);
          req.off('error', onAbort);
          req.off('close', onAbort);
        };
        req.on('data', onData);
        req.on('end', onEnd);
        req.on('error', onAbort);
        req.on('close', onAbort);
      });
    },
  };
}

/** Body of an upgrade request: the bytes after the head arrive in `head` and then on the socket. */
function upgradeBodySource(req: IncomingMessage, socket: Duplex, state: { rest: Buffer }): BodySource {
  return {
    present: hasBody(req.headers),
    read(limit) {
      if (req.headers['transfer-encoding'] !== undefined) {
        return Promise.resolve(rejection('bad_framing', 'a chunked body on an upgrade request is refused'));
      }
      const len = Number(req.headers['content-length'] ?? 0);
      if (!Number.isSafeInteger(len) || len < 0) return Promise.resolve(rejection('bad_framing', 'invalid Content-Length'));
      if (len > limit) {
        return Promise.resolve(rejection('body_too_large', `request body of ${len} bytes is larger than limits.inspectedBodyBytes (${limit})`));
      }
      return new Promise((resolve) => {
        let buf = state.rest;
        const take = () => {
          state.rest = buf.subarray(len);
          resolve(Buffer.from(buf.subarray(0, len)));
        };
        if (buf.length >= len) return take();
        const onData = (c: Buffer) => {
          buf = Buffer.concat([buf, c]);
          if (buf.length >= len) {
            // Pause before dropping the listener: a flowing socket with no listener loses data.
            socket.pause();
            cleanup();
            take();
          }
        };
        const onEnd = () => {
          cleanup();
          resolve(rejection('bad_framing', 'the request body ended early'));
        };
        const cleanup = () => {
          socket.off('data', onData);
          socket.off('end', onEnd);
          socket.off('close', onEnd);
        };
        socket.on('data', onData);
        socket.on('end', onEnd);
        socket.on('close', onEnd);
      });
    },
  };
}

/** Bytes of a refused request's body the gateway reads and discards before cutting the connection. */
export const MAX_DISCARDED_BODY_BYTES = 64 * 1024 * 1024;

function drainBounded(req: IncomingMessage): void {
  let seen = 0;
  req.on('data', (c: Buffer) => {
    seen += c.length;
    if (seen > MAX_DISCARDED_BODY_BYTES) req.socket.destroy();
  });
  req.resume();
}

export type StageRunner = (ctx: RequestContext, go: (r: Rejection | undefined) => void, refuse: (r: Rejection) => void) => void;

/**
 * Runs the stages, then `go`; a stage that throws fails closed: nothing is forwarded. Shared by
 * the node:http adapters below and the raw relay (relay/server.ts).
 */
export function createStageRunner(stages: readonly Stage[], onError?: (err: unknown, ctx: RequestContext) => void): StageRunner {
  return (ctx, go, refuse) => {
    const fault = (err: unknown) => {
      onError?.(err, ctx);
      refuse(rejection('internal', 'internal error; the request was not forwarded'));
    };
    try {
      const te = ctx.headers['transfer-encoding'];
      // Node accepts `gzip, chunked`; Go's server refuses any coding but `chunked`. Refuse what
      // the daemon would read differently.
      if (te !== undefined && te.trim().toLowerCase() !== 'chunked') {
        return refuse(rejection('bad_framing', `Transfer-Encoding ${JSON.stringify(te)} is refused; only "chunked" is accepted`));
      }
      const r = runStages(stages, ctx);
      if (r instanceof Promise) r.then(go, fault);
      else go(r);
    } catch (err) {
      fault(err);
    }
  };
}

export function createGateway(deps: GatewayDeps) {
  const { stages, forwarder, hijack, observer } = deps;
  const run = createStageRunner(stages, deps.onError);

  function handleRequest(req: IncomingMessage, res: ServerResponse): void {
    const ctx = newContext(req, false, httpBodySource(req));
    const refuse = (r: Rejection) => {
      ctx.rejection = r;
      const unread = ctx.bodySource.present && !req.readableEnded;
      // Closing at once while the client still uploads makes the kernel reset the connection,
      // and the docker CLI then shows "broken pipe" instead of the refusal. So answer, then let
      // Node discard the rest of the body - up to a bound, past which the connection is cut.
      rejectHttp(res, r, { head: ctx.method === 'HEAD' });
      if (unread) drainBounded(req);
      observer.finish(ctx);
    };
    const go = (r: Rejection | undefined) => {
      if (r) return refuse(r);
      ctx.decidedNs = process.hrtime.bigint();
      observer.streamOpened('response', ctx);
      forwarder.forward(ctx, req, res, (err) => {
        observer.streamClosed('response', ctx);
        if (err && !res.headersSent) {
          return refuse(rejection('upstream_unavailable', `the Docker daemon is unreachable (${ctx.upstreamError ?? err.message})`));
        }
        if (err) res.destroy();
        observer.finish(ctx);
      });
    };
    run(ctx, go, refuse);
  }

  function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const state = { rest: head };
    const ctx = newContext(req, true, upgradeBodySource(req, socket, state));
    socket.on('error', () => {});
    const refuse = (r: Rejection) => {
      ctx.rejection = r;
      rejectSocket(socket, r);
      observer.finish(ctx);
    };
    // Node checks Host on plain requests only; the relay (http1.ts) and dockerd refuse an
    // HTTP/1.1 upgrade without one too.
    if (req.httpVersion === '1.1' && req.headers.host === undefined) {
      return refuse(rejection('bad_framing', 'malformed HTTP request: missing required Host header'));
    }
    const go = (r: Rejection | undefined) => {
      if (r) return refuse(r);
      if (!ctx.actionDef?.hijack) {
        return refuse(rejection('bad_framing', `${ctx.classification?.action ?? 'this request'} cannot be upgraded`));
      }
      ctx.decidedNs = process.hrtime.bigint();
      observer.streamOpened('hijack', ctx);
      hijack(ctx, req.rawHeaders, socket, state.rest, (result) => {
        observer.streamClosed('hijack', ctx);
        if (result.error && ctx.status === undefined) {
          return refuse(rejection('upstream_unavailable', `the Docker daemon is unreachable (${ctx.upstreamError ?? result.error.message})`));
        }
        observer.finish(ctx);
      });
    };
    run(ctx, go, refuse);
  }

  return { handleRequest, handleUpgrade };
}
