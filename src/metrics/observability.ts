/**
 * Everything observability needs, built once in the composition root:
 *
 *   const obs = createObservability(config, { log });
 *   obs.metrics.policyReloads.inc({ result: 'success' });   // each load (config/reload.ts counts reloads)
 *   obs.trackPolicy(() => policies.holder.current);          // label sets follow the policy in force
 *   createAuthenticate({ ..., onFailure: obs.authFailed });
 *   createGateway({ ..., observer: obs.observer });
 *   http.createServer(obs.metricsApp({ upstream: config.upstream, policyReady: () => ... }));
 *   ...on stop: await obs.close();
 */
import type { Writable } from 'node:stream';
import type { Registry } from 'prom-client';
import type express from 'express';
import { createAuditSink, type AuditSink } from '../audit/audit.js';
import { createObserver, type Observer } from '../pipeline/observe.js';
import { policyGroups } from '../policy/decide.js';
import type { CompiledPolicy } from '../policy/types.js';
import { authFailureReason, createMetrics, type Metrics } from './metrics.js';
import { createMetricsApp, createUpstreamCheck, type UpstreamCheck } from './server.js';

/** The parts of the config (config/schema.ts) that observability reads. */
export interface ObservabilityConfig {
  audit: { file: string };
  /** `userLabel: true` adds dockward_user_requests_total{user}: user names become label values. */
  metrics?: { listen?: string; userLabel?: boolean };
}

/** The operational log (pino's Logger satisfies this). */
export interface WarnLog {
  warn(obj: object, msg: string): void;
  info?(obj: object, msg: string): void;
}

export interface ObservabilityOptions {
  log?: WarnLog;
  /** Tests: a fresh registry is created otherwise. */
  registry?: Registry;
  defaultMetrics?: boolean;
  /** Passed to the audit sink (tests: a stream instead of config.audit.file). */
  audit?: { stream?: Writable; highWaterBytes?: number };
}

export interface Observability {
  readonly metrics: Metrics;
  readonly observer: Observer;
  readonly audit: AuditSink;
  /** For createAuthenticate's `onFailure`. */
  authFailed(reason: string): void;
  /**
   * The policy in force, read again whenever it may have changed: the `group` label takes the
   * groups it names, and each of its deny rules gets a dockward_denials_total series at 0.
   */
  trackPolicy(current: () => CompiledPolicy): void;
  /**
   * The Express app of the metrics listener: /metrics, /healthz, /readyz. `upstream` is the
   * daemon socket that /readyz and each scrape (dockward_upstream_up) ping.
   */
  metricsApp(deps: { upstream: string; policyReady(): boolean }): express.Express;
  /** Flushes and closes the audit sink. */
  close(): Promise<void>;
}

export function createObservability(config: ObservabilityConfig, opts: ObservabilityOptions = {}): Observability {
  let policySource: (() => CompiledPolicy) | undefined;
  let policySeen: CompiledPolicy | undefined;
  let groups: ReadonlySet<string> = new Set();
  let flush = () => {};
  const metrics = createMetrics(opts.registry, {
    defaultMetrics: opts.defaultMetrics,
    userLabel: config.metrics?.userLabel === true,
    beforeScrape: () => {
      currentGroups();
      flush();
    },
    checkUpstream: () => upstream?.check(),
  });

  /** One identity check per request; the sets are rebuilt only when a reload swapped the policy. */
  function currentGroups(): ReadonlySet<string> {
    const policy = policySource?.();
    if (policy !== undefined && policy !== policySeen) {
      policySeen = policy;
      groups = new Set(policyGroups(policy));
      // Alerts use increase(): a deny rule's series exists before its first denial.
      for (const r of policy.rules) if (r.effect === 'deny') metrics.denials.inc({ rule: r.name }, 0);
    }
    return groups;
  }

  // Say it once per burst, not once per record: a stuck sink must not flood the log as well.
  let lastDropLog = 0;
  const audit = createAuditSink({
    file: config.audit.file,
    stream: opts.audit?.stream,
    highWaterBytes: opts.audit?.highWaterBytes,
    onDrop: (reason) => {
      metrics.auditDropped.inc({ reason });
      const now = Date.now();
      if (now - lastDropLog > 10_000) {
        lastDropLog = now;
        opts.log?.warn({ reason, file: config.audit.file }, 'audit records are being dropped (dockward_audit_dropped_total)');
      }
    },
    onError: (err) => opts.log?.warn({ err, file: config.audit.file }, 'the audit sink failed; records are dropped (and counted) until it works again'),
    onRecover: () => (opts.log?.info ?? opts.log?.warn)?.call(opts.log, { file: config.audit.file }, 'the audit sink works again'),
  });

  const observer = createObserver(metrics, audit, { groups: currentGroups });
  flush = observer.flushOpenStreams;
  let upstream: UpstreamCheck | undefined;

  return {
    metrics,
    observer,
    audit,
    authFailed: (reason) => metrics.authFailures.inc({ reason: authFailureReason(reason) }),
    trackPolicy(current) {
      policySource = current;
      currentGroups();
    },
    metricsApp(deps) {
      const check = createUpstreamCheck(metrics, deps.upstream);
      upstream = check;
      return createMetricsApp({ metrics, policyLoaded: deps.policyReady, upstream: check });
    },
    async close() {
      await audit.close();
    },
  };
}
