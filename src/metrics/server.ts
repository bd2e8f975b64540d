/**
 * The metrics listener: /metrics, /healthz, /readyz. Express is used here, off the proxy's hot
 * path, where routing three endpoints is what it does well.
 */
import http from 'node:http';
import express from 'express';
import type { Metrics } from './metrics.js';

export interface HealthDeps {
  metrics: Metrics;
  /** True when policies are loaded. */
  policyLoaded(): boolean;
  /** Resolves true when the daemon answers `/_ping`. */
  pingUpstream(): Promise<boolean>;
}

export function createMetricsApp(deps: HealthDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.get('/metrics', async (_req, res) => {
    res.set('Content-Type', deps.metrics.registry.contentType);
    res.send(await deps.metrics.registry.metrics());
  });
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const policies = deps.policyLoaded();
    const upstream = await deps.pingUpstream();
    res.status(policies && upstream ? 200 : 503).json({ status: policies && upstream ? 'ready' : 'not ready', policies, upstream });
  });
  return app;
}

/** GET /_ping on the daemon socket, bounded in time: readiness must not hang on a stuck daemon. */
export function pingUnixSocket(socketPath: string, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.request({ socketPath, path: '/_ping', method: 'GET', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
    req.end();
  });
}
