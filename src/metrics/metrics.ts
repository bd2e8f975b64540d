/**
 * The gateway's Prometheus metrics (interface.md), on an injected registry. Label values are
 * bounded sets: action names from the catalogue, rule names from the loaded policies, status
 * codes, fixed reason/kind enums - never ids, paths or user names.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

// Sub-millisecond buckets resolve the gateway's own work; the long tail resolves daemon calls
// such as create, pull or a slow stop.
export const DURATION_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export interface Metrics {
  readonly registry: Registry;
  readonly requests: Counter<'action' | 'decision' | 'code'>;
  readonly duration: Histogram<'action'>;
  readonly overhead: Histogram<'action'>;
  readonly denials: Counter<'rule'>;
  readonly authFailures: Counter<'reason'>;
  readonly upstreamErrors: Counter<'kind'>;
  readonly activeStreams: Gauge<'kind'>;
  readonly streamBytes: Counter<'direction'>;
  readonly policyReloads: Counter<'result'>;
  readonly policyRules: Gauge;
  readonly auditDropped: Counter;
}

export function createMetrics(registry = new Registry(), opts: { defaultMetrics?: boolean } = {}): Metrics {
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'dockward_' });
  const registers = [registry];
  return {
    registry,
    requests: new Counter({ name: 'dockward_requests_total', help: 'Requests by action, decision and status code.', labelNames: ['action', 'decision', 'code'], registers }),
    duration: new Histogram({ name: 'dockward_request_duration_seconds', help: 'Time from request to end of response, by action (streams count until they end).', labelNames: ['action'], buckets: DURATION_BUCKETS, registers }),
    overhead: new Histogram({ name: 'dockward_gateway_overhead_seconds', help: "The gateway's own time before forwarding (authenticate, classify, inspect, authorize).", labelNames: ['action'], buckets: DURATION_BUCKETS, registers }),
    denials: new Counter({ name: 'dockward_denials_total', help: 'Denied requests by the rule that decided (or default-deny).', labelNames: ['rule'], registers }),
    authFailures: new Counter({ name: 'dockward_auth_failures_total', help: 'Unauthenticated requests by reason.', labelNames: ['reason'], registers }),
    upstreamErrors: new Counter({ name: 'dockward_upstream_errors_total', help: 'Failures talking to the daemon by kind.', labelNames: ['kind'], registers }),
    activeStreams: new Gauge({ name: 'dockward_active_streams', help: 'Open hijacked sessions and in-flight responses.', labelNames: ['kind'], registers }),
    streamBytes: new Counter({ name: 'dockward_stream_bytes_total', help: 'Body bytes relayed, by direction (in: client to daemon, out: daemon to client).', labelNames: ['direction'], registers }),
    policyReloads: new Counter({ name: 'dockward_policy_reloads_total', help: 'Policy loads by result.', labelNames: ['result'], registers }),
    policyRules: new Gauge({ name: 'dockward_policy_rules', help: 'Rules in the policy in force.', registers }),
    auditDropped: new Counter({ name: 'dockward_audit_dropped_total', help: 'Audit records dropped because the sink could not keep up.', registers }),
  };
}
