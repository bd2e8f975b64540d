/**
 * Observe: what happened to each request, as metrics and one audit record.
 *
 * server.ts tells the observer three things: a request was handed to the daemon
 * (`streamOpened`), that exchange ended (`streamClosed`), and the request is finished (`finish`,
 * exactly once per request, refused or not). Everything else is read from the RequestContext the
 * stages filled in. The hot path pays for a few counter increments and one JSON.stringify;
 * the bytes of long streams are folded into the counters at scrape time, not per chunk.
 */
import { clip, redact, type AuditRecord, type AuditSink } from '../audit/audit.js';
import { codeLabel, upstreamErrorKind, MAX_USER_LABELS, NO_GROUP, OTHER_USER, type DecisionLabel, type Metrics, type StreamKindLabel } from '../metrics/metrics.js';
import type { RequestContext } from './context.js';

export type Outcome = DecisionLabel;

/** How server.ts relays an allowed request: a hijacked socket or an HTTP response. */
export type StreamKind = 'hijack' | 'response';

export interface Observer {
  /**
   * The request was authorised and is being handed to the daemon. With `ctx`, the exchange is
   * counted under its kind (attach, exec, logs, ...) and a hijacked session gets its
   * `stream-open` audit record now; without it, only under the coarse `kind`.
   */
  streamOpened(kind: StreamKind, ctx: RequestContext): void;
  /** The exchange with the daemon has ended (`finish` follows). */
  streamClosed(kind: StreamKind, ctx: RequestContext): void;
  /** Called exactly once per request, when its response (or hijacked session) has ended. */
  finish(ctx: RequestContext): void;
}

export interface ObserverOptions {
  /** Groups the loaded policies name (policyGroups): the only values of the `group` label. */
  groups?: () => ReadonlySet<string>;
}

/**
 * The `decision` label and audit field. A request the policy allowed stays `allow` when the
 * daemon then fails (its status says 502): the decision was made, the daemon did not answer.
 */
export function outcomeOf(ctx: RequestContext): Outcome {
  const r = ctx.rejection;
  if (r) {
    switch (r.code) {
      case 'unauthenticated':
        return 'unauthenticated';
      case 'denied':
        return 'deny';
      case 'upstream_unavailable':
        return ctx.decision?.effect === 'allow' ? 'allow' : 'error';
      case 'internal':
        return 'error';
      default:
        return r.status >= 500 ? 'error' : 'invalid';
    }
  }
  return ctx.decision?.effect === 'allow' ? 'allow' : 'error';
}

export function streamKindOf(action: string): StreamKindLabel {
  switch (action) {
    case 'container.attach':
    case 'container.attach.websocket':
      return 'attach';
    case 'exec.start':
      return 'exec';
    case 'session':
    case 'grpc':
      return 'buildkit';
    case 'container.logs':
    case 'service.logs':
    case 'task.logs':
      return 'logs';
    case 'system.events':
      return 'events';
    case 'container.stats':
      return 'stats';
    case 'container.wait':
      return 'wait';
    default:
      return 'request';
  }
}

interface Open {
  kind: string;
  /** The audit trail already has this request's `stream-open` record. */
  announced: boolean;
  /** Bytes already added to dockward_stream_bytes_total. */
  countedIn: number;
  countedOut: number;
}

const NS_PER_S = 1e9;

export function createObserver(metrics: Metrics, audit: AuditSink, opts: ObserverOptions = {}): Observer & { flushOpenStreams(): void } {
  const open = new Map<RequestContext, Open>();
  const finished = new WeakMap<RequestContext, Open>();
  const users = new Set<string>();

  const close = (ctx: RequestContext) => {
    const o = open.get(ctx);
    if (!o) return;
    open.delete(ctx);
    finished.set(ctx, o);
    metrics.activeStreams.dec({ kind: o.kind });
  };

  const addBytes = (kind: string, o: { countedIn: number; countedOut: number }, bytesIn: number, bytesOut: number) => {
    if (bytesIn > o.countedIn) metrics.streamBytes.inc({ direction: 'in', kind }, bytesIn - o.countedIn);
    if (bytesOut > o.countedOut) metrics.streamBytes.inc({ direction: 'out', kind }, bytesOut - o.countedOut);
    o.countedIn = bytesIn;
    o.countedOut = bytesOut;
  };

  const userLabel = (user: string) => {
    if (users.has(user)) return user;
    if (users.size >= MAX_USER_LABELS) return OTHER_USER;
    users.add(user);
    return user;
  };

  const record = (ctx: RequestContext, event: AuditRecord['event'], decision: Outcome, nowNs: bigint, bytesIn: number): AuditRecord => {
    const action = ctx.classification?.action ?? 'unclassified';
    const params = ctx.classification?.params;
    const target = params?.id ?? params?.name;
    const reason = ctx.rejection?.message ?? ctx.decision?.reason;
    return {
      time: isoNow(),
      event,
      requestId: ctx.id,
      subject: ctx.identity ? { user: ctx.identity.user, groups: ctx.identity.groups, via: ctx.identity.via } : null,
      remote: ctx.remote,
      method: ctx.method,
      path: redact(clip(ctx.request?.path ?? ctx.url.split('?', 1)[0]!)),
      action,
      target: target === undefined ? null : redact(clip(target, 512)),
      decision,
      rule: ctx.decision?.rule ?? null,
      reason: reason === undefined ? null : redact(clip(reason)),
      status: event === 'stream-open' ? null : (ctx.rejection?.status ?? ctx.status ?? 502),
      durationMs: Math.round(Number(nowNs - ctx.startNs) / 1e3) / 1e3,
      bytesIn,
      bytesOut: ctx.bytesOut,
      error: ctx.upstreamError ? upstreamErrorLabel(ctx.upstreamError) : null,
    };
  };

  return {
    streamOpened(kind, ctx) {
      const action = ctx.classification?.action ?? 'unclassified';
      const o: Open = { kind: streamKindOf(action), announced: kind === 'hijack', countedIn: 0, countedOut: 0 };
      open.set(ctx, o);
      metrics.activeStreams.inc({ kind: o.kind });
      // A session can outlive the process (kill -9, OOM): the fact that it was allowed must not
      // depend on it ending cleanly.
      if (o.announced) audit.write(record(ctx, 'stream-open', 'allow', process.hrtime.bigint(), 0));
    },

    streamClosed(_kind, ctx) {
      close(ctx);
    },

    finish(ctx) {
      const now = process.hrtime.bigint();
      close(ctx);
      const o = finished.get(ctx);
      const action = ctx.classification?.action ?? 'unclassified';
      const decision = outcomeOf(ctx);
      const status = ctx.rejection?.status ?? ctx.status ?? 502;

      metrics.requests.inc({ action, decision, code: codeLabel(status) });
      metrics.duration.observe({ action }, Number(now - ctx.startNs) / NS_PER_S);
      // The gateway's own time ends where the daemon's begins; a refusal is all the gateway's.
      const handOff = ctx.decidedNs ?? now;
      metrics.overhead.observe({ action }, Number(handOff - ctx.startNs) / NS_PER_S);
      if (ctx.decidedNs !== undefined) metrics.upstreamDuration.observe({ action }, Number(now - ctx.decidedNs) / NS_PER_S);

      if (ctx.decision) {
        metrics.decisions.inc({ rule: ctx.decision.rule, effect: ctx.decision.effect });
        if (ctx.decision.effect === 'deny') metrics.denials.inc({ rule: ctx.decision.rule });
      }
      if (ctx.identity) {
        const known = opts.groups?.();
        let counted = false;
        if (known) {
          const groups = ctx.identity.groups;
          for (let i = 0; i < groups.length; i++) {
            const group = groups[i]!;
            // A token that lists a group twice still counts once.
            if (!known.has(group) || groups.indexOf(group) !== i) continue;
            metrics.groupRequests.inc({ group, decision });
            counted = true;
          }
        }
        if (!counted) metrics.groupRequests.inc({ group: NO_GROUP, decision });
        metrics.userRequests?.inc({ user: userLabel(ctx.identity.user), decision });
      }
      if (ctx.upstreamError && ctx.upstreamError !== 'client_closed') metrics.upstreamErrors.inc({ kind: upstreamErrorKind(ctx.upstreamError) });

      // The inspected body went to the daemon from the gateway's buffer, not through the relay's
      // byte counter: count it once the daemon has answered.
      const bytesIn = ctx.bytesIn + (ctx.body && ctx.status !== undefined ? ctx.body.length : 0);
      addBytes(o?.kind ?? streamKindOf(action), o ?? { countedIn: 0, countedOut: 0 }, bytesIn, ctx.bytesOut);

      audit.write(record(ctx, o?.announced ? 'stream-close' : 'request', decision, now, bytesIn));
    },

    /** Folds the bytes of still-open exchanges into dockward_stream_bytes_total (called before each scrape). */
    flushOpenStreams() {
      for (const [ctx, o] of open) addBytes(o.kind, o, ctx.bytesIn, ctx.bytesOut);
    },
  };
}

let isoMs = NaN;
let isoText = '';
let isoSecond = NaN;
let isoPrefix = '';
/**
 * `new Date(ms).toISOString()`, which costs ~1.2 µs a call here (more when the caches are cold,
 * between the requests of a busy daemon): the text up to the second is made once a second, the
 * milliseconds are appended, and records within one millisecond share the text.
 */
export function isoTime(ms: number): string {
  if (ms === isoMs) return isoText;
  // Years 0 to 9999 (toISOString writes others as +/-YYYYYY), whole milliseconds.
  if (!(ms >= -62167219200000 && ms < 253402300800000) || !Number.isInteger(ms)) return new Date(ms).toISOString();
  const second = Math.floor(ms / 1000);
  if (second !== isoSecond) {
    isoSecond = second;
    isoPrefix = new Date(second * 1000).toISOString().slice(0, 20);
  }
  const milli = ms - second * 1000;
  isoMs = ms;
  isoText = `${isoPrefix}${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
  return isoText;
}

function isoNow(): string {
  return isoTime(Date.now());
}

/** The audit record's `error`: the daemon-side failure in words an operator searches for. */
function upstreamErrorLabel(code: string): string {
  return code === 'client_closed' ? 'client_closed' : upstreamErrorKind(code);
}
