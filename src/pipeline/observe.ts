/** Observe: when a request is finished, one audit line and its metrics. */
import type { AuditSink } from '../audit/audit.js';
import type { Metrics } from '../metrics/metrics.js';
import type { RequestContext } from './context.js';

export type Outcome = 'allow' | 'deny' | 'unauthenticated' | 'invalid' | 'error';

export interface Observer {
  /** Called exactly once per request, when its response (or hijacked session) has ended. */
  finish(ctx: RequestContext): void;
  streamOpened(kind: StreamKind): void;
  streamClosed(kind: StreamKind): void;
}

export type StreamKind = 'hijack' | 'response';

export function outcomeOf(ctx: RequestContext): Outcome {
  if (ctx.rejection) {
    if (ctx.rejection.status === 401) return 'unauthenticated';
    if (ctx.rejection.status === 403) return 'deny';
    if (ctx.rejection.status >= 500) return 'error';
    return 'invalid';
  }
  return ctx.decision?.effect === 'allow' ? 'allow' : 'error';
}

export function createObserver(metrics: Metrics, audit: AuditSink): Observer {
  return {
    finish(ctx) {
      const end = process.hrtime.bigint();
      const seconds = Number(end - ctx.startNs) / 1e9;
      const action = ctx.classification?.action ?? 'unclassified';
      const outcome = outcomeOf(ctx);
      const status = ctx.rejection?.status ?? ctx.status ?? 502;
      metrics.requests.inc({ action, decision: outcome, code: String(status) });
      metrics.duration.observe({ action }, seconds);
      if (ctx.decidedNs !== undefined) metrics.overhead.observe({ action }, Number(ctx.decidedNs - ctx.startNs) / 1e9);
      if (outcome === 'deny' && ctx.decision) metrics.denials.inc({ rule: ctx.decision.rule });
      if (ctx.upstreamError && ctx.upstreamError !== 'client_closed') metrics.upstreamErrors.inc({ kind: upstreamKind(ctx.upstreamError) });
      if (ctx.bytesIn > 0) metrics.streamBytes.inc({ direction: 'in' }, ctx.bytesIn);
      if (ctx.bytesOut > 0) metrics.streamBytes.inc({ direction: 'out' }, ctx.bytesOut);
      const id = ctx.classification?.params.id ?? ctx.classification?.params.name;
      audit.write({
        time: new Date().toISOString(),
        requestId: ctx.id,
        subject: ctx.identity ? { user: ctx.identity.user, groups: ctx.identity.groups, via: ctx.identity.via } : null,
        remote: ctx.remote,
        method: ctx.method,
        path: ctx.request?.path ?? ctx.url.split('?')[0]!,
        action,
        target: id ?? null,
        decision: outcome,
        rule: ctx.decision?.rule ?? null,
        reason: ctx.rejection?.message ?? (ctx.decision?.effect === 'allow' ? ctx.decision.reason : null),
        status,
        durationMs: Math.round(seconds * 1e6) / 1e3,
        bytesIn: ctx.bytesIn,
        bytesOut: ctx.bytesOut,
      });
    },
    streamOpened(kind) {
      metrics.activeStreams.inc({ kind });
    },
    streamClosed(kind) {
      metrics.activeStreams.dec({ kind });
    },
  };
}

/** A bounded set of kinds for dockward_upstream_errors_total. */
function upstreamKind(code: string): string {
  switch (code) {
    case 'ENOENT':
    case 'ECONNREFUSED':
      return 'unreachable';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'reset';
    case 'EACCES':
      return 'permission';
    default:
      return 'other';
  }
}
