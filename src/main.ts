/**
 * Composition root: load config, keys and policies (failing closed on any error), build metrics
 * and audit, start the gateway and metrics listeners, handle signals.
 */
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { createAuditSink } from './audit/audit.js';
import { createTokenVerifier, loadJwtKeys } from './auth/jwt.js';
import { loadConfig, type ConfigOverrides } from './config/load.js';
import type { Config } from './config/schema.js';
import { createLogger, type Logger } from './log.js';
import { createMetrics } from './metrics/metrics.js';
import { createMetricsApp, pingUnixSocket } from './metrics/server.js';
import { createAuthenticate } from './pipeline/authenticate.js';
import { createAuthorize } from './pipeline/authorize.js';
import { createClassify } from './pipeline/classify.js';
import { createForwarder } from './pipeline/forward.js';
import { createHijacker } from './pipeline/hijack.js';
import { createInspect } from './pipeline/inspect.js';
import { createObserver } from './pipeline/observe.js';
import { decide } from './policy/decide.js';
import { formatPolicyError, loadPolicyFiles } from './policy/load.js';
import { ruleCount } from './policy/decide.js';
import { createGateway } from './server.js';

export class StartupError extends Error {
  constructor(readonly errors: string[]) {
    super(errors.join('\n'));
  }
}

export interface RunningGateway {
  readonly listen: string;
  readonly metricsListen: string;
  /** Stops accepting, lets requests finish for `graceMs`, then cuts what is left (streams). */
  stop(graceMs?: number): Promise<void>;
}

function splitHostPort(hp: string): { host: string; port: number } {
  const i = hp.lastIndexOf(':');
  return { host: hp.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(hp.slice(i + 1)) };
}

function addressOf(server: http.Server): string {
  const a = server.address() as AddressInfo;
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

function listenOn(server: http.Server, hp: string): Promise<void> {
  const { host, port } = splitHostPort(hp);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[?::1\]?)$/;

export async function startGateway(configFile: string, overrides: ConfigOverrides, log: Logger = createLogger()): Promise<RunningGateway> {
  const loaded = loadConfig(configFile, overrides, process.env);
  if (!loaded.ok || !loaded.config) throw new StartupError(['invalid configuration:', ...loaded.errors]);
  const config: Config = loaded.config;

  let verifier;
  if (config.auth.jwt) {
    try {
      verifier = createTokenVerifier(config.auth.jwt, loadJwtKeys(config.auth.jwt));
    } catch (err) {
      throw new StartupError([(err as Error).message]);
    }
  }

  const policyResult = await loadPolicyFiles(config.policies, { cwd: process.cwd() });
  if (!policyResult.ok) throw new StartupError(['invalid policy:', ...policyResult.errors.map(formatPolicyError)]);
  const policy = policyResult.policy;

  const metrics = createMetrics();
  metrics.policyReloads.inc({ result: 'success' });
  metrics.policyRules.set(ruleCount(policy));
  const audit = createAuditSink(config.audit.file, () => metrics.auditDropped.inc());
  const observer = createObserver(metrics, audit);
  const forwarder = createForwarder(config.upstream);

  const gateway = createGateway({
    stages: [
      createAuthenticate({ verifier, anonymous: config.auth.anonymous, onFailure: (reason) => metrics.authFailures.inc({ reason }) }),
      createClassify(),
      createInspect({ inspectedBodyBytes: config.limits.inspectedBodyBytes }),
      createAuthorize({ decide: (input) => decide(policy, input) }),
    ],
    forwarder,
    hijack: createHijacker(config.upstream),
    observer,
    onError: (err, ctx) => log.error({ err, requestId: ctx.id }, 'request failed inside the gateway'),
  });

  const serverOptions: http.ServerOptions = {
    // Long uploads, imports and streams must not be cut (pitfalls.md); the head must still arrive in time.
    requestTimeout: 0,
    headersTimeout: 60_000,
    keepAliveTimeout: 5_000,
    maxHeaderSize: 64 * 1024,
  };
  const server: http.Server = config.tls
    ? https.createServer({ ...serverOptions, cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key), minVersion: 'TLSv1.2' })
    : http.createServer(serverOptions);
  // Every connection, so that shutdown can end hijacked ones (the HTTP server forgets upgraded sockets).
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('request', gateway.handleRequest);
  server.on('upgrade', gateway.handleUpgrade);
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{"message":"dockward: malformed HTTP request"}');
    else socket.destroy();
  });

  const metricsServer = http.createServer(
    createMetricsApp({ metrics, policyLoaded: () => true, pingUpstream: () => pingUnixSocket(config.upstream) }),
  );

  await listenOn(server, config.listen);
  await listenOn(metricsServer, config.metrics.listen);
  const listen = addressOf(server);
  const metricsListen = addressOf(metricsServer);

  if (!config.tls && !LOOPBACK.test(splitHostPort(config.listen).host)) {
    log.warn({ listen }, 'listening on a non-loopback address without TLS: bearer tokens cross the network in clear text');
  }
  if (!existsSync(config.upstream)) log.warn({ upstream: config.upstream }, 'the Docker socket does not exist yet; requests get 502 until it does');
  log.info({ listen, metrics: metricsListen, upstream: config.upstream, policies: policyResult.files, rules: ruleCount(policy), tls: Boolean(config.tls) }, 'listening');
  if (config.auth.jwt?.secretFile && config.auth.jwt.createSecretIfMissing) {
    log.info(`mint a token with: npx dockward token --secret-file ${config.auth.jwt.secretFile} --sub "$USER" --groups dev`);
  }

  return {
    listen,
    metricsListen,
    async stop(graceMs = 10_000) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        // Upgraded (hijacked) sockets and endless streams never become idle: cut them after the grace period.
        const cut = setTimeout(() => {
          server.closeAllConnections();
          for (const s of sockets) s.destroy();
        }, graceMs);
        cut.unref();
      });
      forwarder.close();
      metricsServer.close();
      await audit.close();
    },
  };
}
