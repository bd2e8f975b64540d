/**
 * The gateway's Prometheus metrics (interface.md), on an injected registry.
 *
 * Every label has a closed value set, so that no caller can grow the series count:
 * action   - catalogue action names, `unknown` (no route matched), `unclassified` (refused before
 *            classification, e.g. unauthenticated);
 * decision - allow | deny | unauthenticated | invalid | error;
 * code     - the 3-digit HTTP status the client got;
 * rule     - rule names of the loaded policies and `default-deny`;
 * group    - groups named by `group:` subjects in the loaded policies, else `(none)`;
 * user     - only when the operator opts in (metrics.userLabel), capped at MAX_USER_LABELS;
 * kind, reason, direction, result - fixed enums below.
 * Ids, paths and free-form names never become label values.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics, type CounterConfiguration } from 'prom-client';
import { FastCounter, FastGauge, FastHistogram } from './fast.js';

/**
 * Whole requests and the daemon's share: from ~250 µs (a proxied `/_ping`) through multi-second
 * daemon calls (create, pull, stop with a grace period) to streams that last minutes.
 */
export const DURATION_BUCKETS = [0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** The gateway's own work per request is tens to hundreds of microseconds: resolve that. */
export const OVERHEAD_BUCKETS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1];

export const DECISIONS = ['allow', 'deny', 'unauthenticated', 'invalid', 'error'] as const;
export type DecisionLabel = (typeof DECISIONS)[number];

/**
 * What an open exchange is, for dockward_active_streams and dockward_stream_bytes_total:
 * attach / exec - interactive sessions (hijacked, or a plain streaming attach);
 * buildkit      - BuildKit's hijacked /session and /grpc;
 * logs / events / stats - read streams that last as long as the client wants;
 * wait          - `docker run` holds one `/wait` per attached container;
 * request       - every other (finite) answer, including long transfers such as export or pull.
 */
export const STREAM_KINDS = ['attach', 'exec', 'buildkit', 'logs', 'events', 'stats', 'wait', 'request'] as const;
export type StreamKindLabel = (typeof STREAM_KINDS)[number];

/**
 * The reasons the authenticate stage reports (src/auth/jwt.ts AuthFailure), pre-created at 0.
 * Reasons are code constants, never caller input; one added to AuthFailure later still counts.
 */
export const AUTH_FAILURE_REASONS = ['missing', 'malformed', 'algorithm', 'signature', 'expired', 'not_yet_valid', 'issuer', 'audience', 'claims', 'key', 'certificate'] as const;

/** dockward_upstream_errors_total{kind}. `client_closed` is not an error of the daemon and is not counted. */
export const UPSTREAM_ERROR_KINDS = ['unreachable', 'reset', 'timeout', 'permission', 'other'] as const;

export const AUDIT_DROP_REASONS = ['backlog', 'error'] as const;

/** With metrics.userLabel on, users beyond this many distinct names share `user="(other)"`. */
export const MAX_USER_LABELS = 500;
export const NO_GROUP = '(none)';
export const OTHER_USER = '(other)';

export interface Metrics {
  readonly registry: Registry;
  // The series every request touches are fast.ts's; the others are prom-client's own.
  readonly requests: FastCounter<'action' | 'decision' | 'code'>;
  readonly duration: FastHistogram<'action'>;
  readonly overhead: FastHistogram<'action'>;
  readonly upstreamDuration: FastHistogram<'action'>;
  readonly denials: Counter<'rule'>;
  readonly decisions: FastCounter<'rule' | 'effect'>;
  readonly groupRequests: FastCounter<'group' | 'decision'>;
  /** Only with metrics.userLabel. */
  readonly userRequests?: FastCounter<'user' | 'decision'>;
  readonly authFailures: Counter<'reason'>;
  readonly upstreamErrors: Counter<'kind'>;
  readonly upstreamUp: Gauge;
  readonly activeStreams: FastGauge<'kind'>;
  readonly streamBytes: FastCounter<'direction' | 'kind'>;
  readonly policyReloads: Counter<'result'>;
  readonly policyRules: Gauge;
  readonly policyLastReloadSuccessful: Gauge;
  readonly policyLastReloadTime: Gauge;
  readonly auditDropped: Counter<'reason'>;
}

/**
 * How often nodejs_eventloop_lag_* samples the loop. prom-client's default (10 ms) is a timer
 * that wakes an idle gateway 100 times a second: 7.5-12 ms of CPU per second doing nothing,
 * against 4-5 ms at 100 ms (/proc over 20 s idle, three runs each). A blocked loop still shows:
 * the next sample is late.
 */
const EVENT_LOOP_SAMPLE_MS = 100;

export interface MetricsOptions {
  /** Node and process metrics (`process_*`, `nodejs_*`); default on. */
  defaultMetrics?: boolean;
  /** Adds dockward_user_requests_total{user,decision} (metrics.userLabel). */
  userLabel?: boolean;
  /** Called before each scrape (lets the observer fold in the bytes of streams still open). */
  beforeScrape?: () => void;
  /** Called at each scrape to refresh dockward_upstream_up (it sets the gauge itself). */
  checkUpstream?: () => Promise<unknown> | undefined;
}

export function createMetrics(registry = new Registry(), opts: MetricsOptions = {}): Metrics {
  // Unprefixed on purpose: `process_cpu_seconds_total` and `nodejs_heap_size_used_bytes` are the
  // names every client library uses and every stock dashboard and alert expects.
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  const registers = [registry];
  const beforeScrape = opts.beforeScrape;
  // Registered below, after the reload counter that drives them: /metrics lists them together.
  const lastReloadSuccessful = new Gauge({ name: 'dockward_policy_last_reload_successful', help: 'Whether the last policy load succeeded (1) or failed and the previous policy stayed in force (0).', registers: [] });
  const lastReloadTime = new Gauge({ name: 'dockward_policy_last_reload_success_timestamp_seconds', help: 'When the policy in force was loaded (Unix time).', registers: [] });

  const m: Metrics = {
    registry,
    requests: new FastCounter({ name: 'dockward_requests_total', help: 'Requests by action, decision and the status code the client got.', labelNames: ['action', 'decision', 'code'], registers }),
    duration: new FastHistogram({ name: 'dockward_request_duration_seconds', help: 'From the request head to the end of the response, by action (streams and sessions count until they end).', labelNames: ['action'], buckets: DURATION_BUCKETS, registers }),
    overhead: new FastHistogram({ name: 'dockward_gateway_overhead_seconds', help: "The gateway's own time per request: from the request head to the hand-off to the daemon (authenticate, classify, inspect, authorize), or to its own refusal.", labelNames: ['action'], buckets: OVERHEAD_BUCKETS, registers }),
    upstreamDuration: new FastHistogram({ name: 'dockward_upstream_duration_seconds', help: "The daemon's time for forwarded requests: from the hand-off to the end of its answer (streams and sessions count until they end).", labelNames: ['action'], buckets: DURATION_BUCKETS, registers }),
    denials: new Counter({ name: 'dockward_denials_total', help: 'Denied requests by the rule that decided (default-deny when no rule allowed).', labelNames: ['rule'], registers }),
    decisions: new FastCounter({ name: 'dockward_decisions_total', help: 'Policy decisions by the deciding rule and its effect.', labelNames: ['rule', 'effect'], registers }),
    groupRequests: new FastCounter({ name: 'dockward_group_requests_total', help: 'Authenticated requests by caller group and decision; a request counts once for each of its groups that the policies name, callers in none of them under group="(none)".', labelNames: ['group', 'decision'], registers }),
    userRequests: opts.userLabel
      ? new FastCounter({ name: 'dockward_user_requests_total', help: `Authenticated requests by user and decision (metrics.userLabel); beyond ${MAX_USER_LABELS} users, user="(other)".`, labelNames: ['user', 'decision'], registers })
      : undefined,
    authFailures: new Counter({ name: 'dockward_auth_failures_total', help: 'Requests refused as unauthenticated, by reason.', labelNames: ['reason'], registers }),
    upstreamErrors: new Counter({ name: 'dockward_upstream_errors_total', help: 'Failures talking to the daemon, by kind.', labelNames: ['kind'], registers }),
    upstreamUp: new Gauge({
      name: 'dockward_upstream_up',
      help: 'Whether the daemon answers GET /_ping (1) or not (0), checked at each scrape and each /readyz.',
      registers,
      collect: async () => {
        await opts.checkUpstream?.();
      },
    }),
    activeStreams: new FastGauge({ name: 'dockward_active_streams', help: 'Open exchanges with the daemon by kind: attach/exec/buildkit sessions, logs/events/stats streams, wait, and finite requests in flight.', labelNames: ['kind'], registers }),
    streamBytes: new FastCounter({
      name: 'dockward_stream_bytes_total',
      help: 'Bytes relayed, by direction (in: client to daemon, out: daemon to client) and kind; open streams are counted as they flow.',
      labelNames: ['direction', 'kind'],
      registers,
      collect: beforeScrape,
    }),
    auditDropped: new Counter({ name: 'dockward_audit_dropped_total', help: 'Audit records dropped: backlog (the sink could not keep up) or error (the sink failed).', labelNames: ['reason'], registers }),
    policyReloads: policyReloadCounter(lastReloadSuccessful, lastReloadTime, { name: 'dockward_policy_reloads_total', help: 'Policy loads (start-up and reloads) by result.', labelNames: ['result'], registers }),
    policyRules: new Gauge({ name: 'dockward_policy_rules', help: 'Rules in the policy in force.', registers }),
    policyLastReloadSuccessful: lastReloadSuccessful,
    policyLastReloadTime: lastReloadTime,
  };

  registry.registerMetric(lastReloadSuccessful);
  registry.registerMetric(lastReloadTime);

  // Series that alerts and rate() read exist from the start at 0: a counter that appears with
  // its first increment hides that increment from increase().
  for (const reason of AUTH_FAILURE_REASONS) m.authFailures.inc({ reason }, 0);
  for (const kind of UPSTREAM_ERROR_KINDS) m.upstreamErrors.inc({ kind }, 0);
  for (const kind of STREAM_KINDS) {
    m.activeStreams.set({ kind }, 0);
    m.streamBytes.inc({ direction: 'in', kind }, 0);
    m.streamBytes.inc({ direction: 'out', kind }, 0);
  }
  for (const result of ['success', 'error']) m.policyReloads.inc({ result }, 0);
  for (const reason of AUDIT_DROP_REASONS) m.auditDropped.inc({ reason }, 0);
  m.denials.inc({ rule: 'default-deny' }, 0);
  return m;
}

/**
 * dockward_policy_reloads_total, which also keeps the two "last reload" gauges: whoever counts a
 * load result (main.ts at start-up, config/reload.ts on SIGHUP or a file change) updates them in
 * the same call, so they cannot disagree with the counter. The alert on a failed reload reads the
 * gauge: it fires until a reload succeeds, not for a fixed window after the failure.
 */
function policyReloadCounter(lastSuccessful: Gauge, lastSuccessTime: Gauge, config: CounterConfiguration<'result'>): Counter<'result'> {
  const counter = new Counter(config);
  // prom-client itself assigns `inc` per instance in its constructor; this wraps that function.
  const count = counter.inc.bind(counter) as (labels?: unknown, value?: number) => void;
  counter.inc = ((labels?: unknown, value?: number) => {
    count(labels, value);
    if (value === 0 || typeof labels !== 'object' || labels === null) return;
    const result = (labels as { result?: unknown }).result;
    if (result === 'success') {
      lastSuccessful.set(1);
      lastSuccessTime.set(Date.now() / 1000);
    } else if (result === 'error') {
      lastSuccessful.set(0);
    }
  }) as Counter<'result'>['inc'];
  return counter;
}

/** A bounded `reason` for dockward_auth_failures_total: an identifier from the code, else `other`. */
export function authFailureReason(reason: string): string {
  return /^[a-z][a-z_]{0,31}$/.test(reason) ? reason : 'other';
}

/** A bounded `kind` for dockward_upstream_errors_total, from a Node error code. */
export function upstreamErrorKind(code: string): (typeof UPSTREAM_ERROR_KINDS)[number] {
  switch (code) {
    case 'ENOENT':
    case 'ECONNREFUSED':
      return 'unreachable';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'reset';
    case 'ETIMEDOUT':
      return 'timeout';
    case 'EACCES':
    case 'EPERM':
      return 'permission';
    default:
      return 'other';
  }
}

/** A 3-digit status, or `other` (a daemon that answers nonsense must not invent label values). */
export function codeLabel(status: number): string {
  return Number.isInteger(status) && status >= 100 && status <= 599 ? String(status) : 'other';
}
