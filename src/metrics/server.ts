/**
 * The metrics listener: /metrics, /healthz, /readyz. Express is used here, off the proxy's hot
 * path, where routing three endpoints is what it does well.
 *
 * /healthz - the process is up and serving (liveness: restart it when this fails);
 * /readyz  - policies are loaded AND the daemon answers GET /_ping (readiness: send traffic).
 */
import http from 'node:http';
import express from 'express';
import type { Metrics } from './metrics.js';

export interface HealthDeps {
  metrics: Metrics;
  /** True when a policy is in force. */
  policyLoaded(): boolean;
  /** Pings the daemon and sets dockward_upstream_up (createUpstreamCheck). */
  upstream: UpstreamCheck;
}

export function createMetricsApp(deps: HealthDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.get('/metrics', async (_req, res) => {
    try {
      const text = await deps.metrics.registry.metrics();
      res.set('Content-Type', deps.metrics.registry.contentType);
      res.send(text);
    } catch {
      res.status(500).type('text/plain').send('collecting metrics failed\n');
    }
  });
  app.get('/healthz', (_req, res) => {
    res.set('Cache-Control', 'no-store');
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const policies = deps.policyLoaded();
    const upstream = await deps.upstream.check();
    const ready = policies && upstream;
    res.set('Cache-Control', 'no-store');
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready', policies, upstream });
  });
  app.use((_req, res) => {
    res.status(404).type('text/plain').send('not found: this listener serves /metrics, /healthz and /readyz\n');
  });
  return app;
}

/** GET /_ping on the daemon socket, bounded in time: readiness must not hang on a stuck daemon. */
export function pingUnixSocket(socketPath: string, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(ok);
    };
    // The socket timeout only measures idleness; a daemon that trickles bytes needs a hard deadline.
    const timer = setTimeout(() => {
      req.destroy(new Error('timeout'));
      settle(false);
    }, timeoutMs);
    const req = http.request({ socketPath, path: '/_ping', method: 'GET', agent: false, headers: { Connection: 'close' } }, (res) => {
      res.resume();
      settle(res.statusCode === 200);
    });
    req.on('error', () => settle(false));
    req.end();
  });
}

export interface UpstreamCheck {
  /** Pings now and sets dockward_upstream_up; callers at the same moment share one ping. */
  check(): Promise<boolean>;
}

/**
 * dockward_upstream_up from a ping of the daemon, on demand: /readyz and every scrape call it
 * (like an exporter's `up`), so the gauge is as fresh as the scrape and nothing pings the daemon
 * when nobody is looking.
 */
export function createUpstreamCheck(metrics: Metrics, socketPath: string, opts: { timeoutMs?: number; ping?: (socketPath: string, timeoutMs: number) => Promise<boolean> } = {}): UpstreamCheck {
  const timeoutMs = opts.timeoutMs ?? 2_000;
  const ping = opts.ping ?? pingUnixSocket;
  let inFlight: Promise<boolean> | undefined;
  return {
    check() {
      inFlight ??= ping(socketPath, timeoutMs).then((up) => {
        inFlight = undefined;
        metrics.upstreamUp.set(up ? 1 : 0);
        return up;
      });
      return inFlight;
    },
  };
}
