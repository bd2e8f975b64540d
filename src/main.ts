/**
 * Composition root: load config, keys and policies (failing closed on any error), build metrics
 * and audit, start the gateway and metrics listeners, handle signals.
 */
import { constants as cryptoConstants } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo, type Socket } from 'node:net';
import tls, { createSecureContext, TLSSocket } from 'node:tls';
import { createTokenVerifier, loadJwtKeys, type TokenVerifier } from './auth/jwt.js';
import { createPeerIdentities, NO_PEER, type PeerResult } from './auth/mtls.js';
import { loadConfig, type ConfigOverrides } from './config/load.js';
import { createPolicyReloader, watchPolicyFiles, type PolicyWatcher, type ReloadResult, type ReloadTrigger } from './config/reload.js';
import { hostOf, isLoopbackHost, splitHostPort, type Config, type TlsConfig } from './config/schema.js';
import { createLogger, type Logger } from './log.js';
import { createObservability } from './metrics/observability.js';
import { createAuthenticate } from './pipeline/authenticate.js';
import { createAuthorize } from './pipeline/authorize.js';
import { createClassify } from './pipeline/classify.js';
import { createDirectForwarder } from './pipeline/forward-direct.js';
import { createForwarder } from './pipeline/forward.js';
import { createHijacker } from './pipeline/hijack.js';
import { createInspect } from './pipeline/inspect.js';
import { createStamp } from './pipeline/stamp.js';
import { createResolveTarget } from './pipeline/target.js';
import { createTargetResolver } from './docker/resolve.js';
import { decide, factNeeds, ruleCount } from './policy/decide.js';
import { formatPolicyError, loadPolicyFiles } from './policy/load.js';
import { createGateway, createStageRunner } from './server.js';
import { rejection } from './errors.js';
import { rejectionBytes } from './pipeline/reject.js';
import { createRelay, type Relay } from './relay/server.js';
import { sendBufferLog } from './relay/sockopt.js';
import type { RequestContext } from './pipeline/context.js';

/** Request heads larger than this are refused (Node's default is 16 KiB; some clients send big cookies). */
const MAX_HEAD_BYTES = 64 * 1024;
const HEADERS_TIMEOUT_MS = 60_000;
const KEEP_ALIVE_MS = 5_000;

export class StartupError extends Error {
  constructor(readonly errors: string[]) {
    super(errors.join('\n'));
  }
}

export interface RunningGateway {
  readonly listen: string;
  readonly metricsListen: string;
  /** `shutdown.graceSeconds` in ms: stop()'s default. */
  readonly graceMs: number;
  /** Stops accepting, lets requests finish for `graceMs`, then cuts what is left (streams). */
  stop(graceMs?: number): Promise<void>;
  /**
   * SIGHUP: reloads the policy (kept when the new one does not load), the TLS certificate, key and
   * client CA (kept when they do not load), and fetches the JWKS again.
   */
  reload(trigger?: ReloadTrigger): Promise<ReloadResult>;
}

function addressOf(server: net.Server): string {
  const a = server.address() as AddressInfo;
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

function listenOn(server: net.Server, hp: string): Promise<void> {
  const { host, port } = splitHostPort(hp);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * The listener's TLS settings. TLS 1.2 is the floor; renegotiation is off, so a connection cannot
 * swap its client certificate after the handshake (mTLS identities are computed per connection).
 */
export function tlsServerOptions(tls: TlsConfig): https.ServerOptions {
  const read = (key: 'cert' | 'key' | 'clientCA', file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new StartupError([`tls.${key}: cannot read ${file}: ${(err as Error).message}`]);
    }
  };
  const opts: https.ServerOptions = {
    cert: read('cert', tls.cert),
    key: read('key', tls.key),
    minVersion: tls.minVersion,
    secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION,
  };
  if (tls.clientCA) {
    opts.ca = read('clientCA', tls.clientCA);
    opts.requestCert = true;
    // `require`: no certificate signed by clientCA, no handshake (like dockerd --tlsverify).
    // `optional`: the handshake completes and the authenticate stage refuses an untrusted one.
    opts.rejectUnauthorized = tls.clientAuth !== 'optional';
  }
  try {
    // Readable is not enough: a key that does not match the certificate, or a file that is not
    // PEM, must stop the start (or a reload) with a message that names the setting.
    createSecureContext(opts);
  } catch (err) {
    throw new StartupError([`tls: ${tls.cert}, ${tls.key}${tls.clientCA ? `, ${tls.clientCA}` : ''} do not load: ${(err as Error).message}`]);
  }
  return opts;
}

/** The client-certificate identity of a request, read from the TLS connection it came in on. */
function peerIdentities(config: Config): ((ctx: RequestContext) => PeerResult) | undefined {
  if (!config.tls?.clientCA || !config.auth.mtls) return undefined;
  const peerOf = createPeerIdentities(config.auth.mtls);
  return (ctx) => (ctx.socket instanceof TLSSocket ? peerOf(ctx.socket) : NO_PEER);
}

/** Keys (and, for jwksUrl, a first fetch that may fail: the provider may be down for now). */
async function createVerifier(config: Config, log: Logger): Promise<{ verifier?: TokenVerifier; refreshKeys?: () => Promise<boolean> }> {
  const cfg = config.auth.jwt;
  if (!cfg) return {};
  let keys;
  try {
    keys = loadJwtKeys(cfg, {
      onError: (message) => log.warn({ jwks: cfg.jwksFile ?? cfg.jwksUrl }, `JWKS: ${message}`),
      onUpdate: (info) => log.info({ jwks: cfg.jwksFile ?? cfg.jwksUrl, keys: info.keys, kids: info.kids }, 'JWKS loaded'),
    });
  } catch (err) {
    throw new StartupError([(err as Error).message]);
  }
  if (keys.jwks) {
    const ok = await keys.jwks.refresh();
    // A key file is part of the configuration: fail closed at start-up. An identity provider that
    // is down for a moment is not: tokens are refused (401) until its keys can be fetched.
    if (!ok && cfg.jwksFile) throw new StartupError([`auth.jwt.jwksFile: no usable key set in ${cfg.jwksFile} (see the JWKS log lines above)`]);
    if (!ok) log.error({ jwksUrl: cfg.jwksUrl }, 'JWKS: the key set could not be fetched; tokens signed by the identity provider are refused until it can');
  }
  return { verifier: createTokenVerifier(cfg, keys), refreshKeys: keys.jwks?.refresh };
}

export async function startGateway(configFile: string, overrides: ConfigOverrides, log: Logger = createLogger()): Promise<RunningGateway> {
  const loaded = loadConfig(configFile, overrides, process.env);
  if (!loaded.ok || !loaded.config) throw new StartupError(['invalid configuration:', ...loaded.errors]);
  const config: Config = loaded.config;

  const { verifier, refreshKeys } = await createVerifier(config, log);
  const tlsOptions = config.tls ? tlsServerOptions(config.tls) : undefined;
  const peer = peerIdentities(config);

  const policyResult = await loadPolicyFiles(config.policies, { cwd: process.cwd() });
  if (!policyResult.ok) throw new StartupError(['invalid policy:', ...policyResult.errors.map(formatPolicyError)]);
  const policy = policyResult.policy;

  const obs = createObservability(config, { log });
  const metrics = obs.metrics;
  metrics.policyReloads.inc({ result: 'success' });
  metrics.policyRules.set(ruleCount(policy));
  // The policy in force: reloads swap `policies.holder.current`; each request is decided once.
  const policies = createPolicyReloader({ patterns: config.policies, cwd: process.cwd(), initial: policy, metrics, log });
  obs.trackPolicy(() => policies.holder.current);
  const targets = createTargetResolver(config.upstream, config.ownership);
  const stages = [
    createAuthenticate({
      verifier,
      anonymous: config.auth.anonymous,
      peer,
      precedence: config.auth.precedence,
      onFailure: obs.authFailed,
    }),
    createClassify(),
    // Facts and targets are read only for actions whose rules use them (the hot path stays cheap).
    createInspect({ inspectedBodyBytes: config.limits.inspectedBodyBytes, factNeeds: (action) => factNeeds(policies.holder.current, action) }),
    createResolveTarget({ resolver: targets, needsTarget: (action) => factNeeds(policies.holder.current, action).target }),
    createAuthorize({
      decide: (input) => decide(policies.holder.current, input),
      needsTarget: (action) => factNeeds(policies.holder.current, action).target,
      ownership: config.ownership,
    }),
    createStamp(config.ownership),
  ];
  const onError = (err: unknown, ctx: RequestContext) => log.error({ err, requestId: ctx.id }, 'request failed inside the gateway');
  const listener = config.upstreamClient === 'relay' ? relayListener(config, tlsOptions, stages, obs, onError, log) : httpListener(config, tlsOptions, stages, obs, onError);
  const server = listener.server;

  const metricsServer = http.createServer(obs.metricsApp({ upstream: config.upstream, policyReady: () => policies.holder.current !== undefined }));

  await listenOn(server, config.listen);
  await listenOn(metricsServer, config.metrics.listen);
  const listen = addressOf(server);
  const metricsListen = addressOf(metricsServer);

  if (!config.tls && !isLoopbackHost(hostOf(config.listen))) {
    // Only reachable with insecureListen: true (the config refuses it otherwise).
    log.warn({ listen }, 'insecureListen: listening on a non-loopback address without TLS: bearer tokens cross the network in clear text');
  }
  if (!existsSync(config.upstream)) log.warn({ upstream: config.upstream }, 'the Docker socket does not exist yet; requests get 502 until it does');
  const watcher: PolicyWatcher | undefined = config.reload.watch
    ? watchPolicyFiles(config.policies, process.cwd(), () => void policies.reload('watch'), {
        debounceMs: config.reload.debounceMs,
        onError: (dir, err) => log.warn({ dir, err: err.message }, 'policy files in this directory are not watched; SIGHUP still reloads'),
      })
    : undefined;
  log.info(
    {
      listen,
      metrics: metricsListen,
      upstream: config.upstream,
      policies: policyResult.files,
      rules: ruleCount(policy),
      tls: Boolean(config.tls),
      clientAuth: config.tls?.clientAuth ?? null,
      jwt: config.auth.jwt ? (config.auth.jwt.jwksUrl ?? config.auth.jwt.jwksFile ?? config.auth.jwt.algorithms.join(',')) : null,
    },
    'listening',
  );
  if (config.auth.jwt?.secretFile && config.auth.jwt.createSecretIfMissing) {
    log.info(`mint a token with: npx dockward token --secret-file ${config.auth.jwt.secretFile} --sub "$USER" --groups dev`);
  }

  const graceMs = config.shutdown.graceSeconds * 1000;
  let stopped = false;

  /** SIGHUP: the TLS material is swapped only when all of it loads. */
  function reloadTls(): void {
    if (!config.tls || !(server instanceof tls.Server)) return;
    try {
      server.setSecureContext(tlsServerOptions(config.tls));
      log.info({ cert: config.tls.cert }, 'TLS certificate and key reloaded');
    } catch (err) {
      const errors = err instanceof StartupError ? err.errors : [(err as Error).message];
      log.error({ errors }, 'TLS reload failed: the certificate and key in use are kept');
    }
  }

  return {
    listen,
    metricsListen,
    graceMs,
    async reload(trigger = 'signal') {
      if (stopped) return { ok: false, errors: ['the gateway is stopping'] };
      reloadTls();
      // Fetched in the background: a slow identity provider must not hold up the policy.
      void refreshKeys?.();
      // After logrotate moved the audit file away (without copytruncate): write to a new one.
      if (trigger === 'signal') obs.audit.reopen();
      return policies.reload(trigger);
    },
    async stop(ms = graceMs) {
      stopped = true;
      watcher?.close();
      await listener.stop(ms);
      targets.close();
      metricsServer.closeAllConnections();
      await new Promise<void>((resolve) => metricsServer.close(() => resolve()));
      await obs.close();
    },
  };
}

type Stages = Parameters<typeof createGateway>[0]['stages'];
type Observability = ReturnType<typeof createObservability>;

interface Listener {
  readonly server: net.Server;
  /** Stops accepting, lets requests finish for `graceMs`, then cuts what is left (streams). */
  stop(graceMs: number): Promise<void>;
}

/** The node:http listener with the `direct` or `http-proxy` upstream client. */
function httpListener(config: Config, tlsOptions: https.ServerOptions | undefined, stages: Stages, obs: Observability, onError: (err: unknown, ctx: RequestContext) => void): Listener {
  const forwarder = config.upstreamClient === 'http-proxy' ? createForwarder(config.upstream) : createDirectForwarder(config.upstream);
  const gateway = createGateway({ stages, forwarder, hijack: createHijacker(config.upstream), observer: obs.observer, onError });
  const serverOptions: http.ServerOptions = {
    // Long uploads, imports and streams must not be cut (pitfalls.md); the head must still arrive in time.
    requestTimeout: 0,
    headersTimeout: HEADERS_TIMEOUT_MS,
    keepAliveTimeout: KEEP_ALIVE_MS,
    maxHeaderSize: MAX_HEAD_BYTES,
  };
  const server: http.Server = tlsOptions
    ? // TLS sockets are not half-open by default (plain HTTP ones are): without this, the docker
      // CLI's half-close after stdin (a TLS close_notify) would end the whole connection and lose
      // the rest of an exec's or attach's output.
      https.createServer({ ...serverOptions, ...tlsOptions, allowHalfOpen: true })
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
    if (socket.writable) socket.end(rejectionBytes(rejection('bad_framing', 'malformed HTTP request'), { close: true }));
    else socket.destroy();
  });
  return {
    server,
    async stop(ms) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        // A keep-alive connection becomes idle when its request finishes: close it then, rather
        // than when its keep-alive timeout runs out.
        const idle = setInterval(() => server.closeIdleConnections(), 100);
        // Upgraded (hijacked) sockets and endless streams never become idle: cut them after the grace period.
        const cut = setTimeout(() => {
          server.closeAllConnections();
          for (const s of sockets) s.destroy();
        }, ms);
        server.once('close', () => {
          clearInterval(idle);
          clearTimeout(cut);
        });
      });
      forwarder.close();
    },
  };
}

/** The raw relay (relay/server.ts): the gateway reads request heads itself on a plain or TLS socket. */
function relayListener(config: Config, tlsOptions: https.ServerOptions | undefined, stages: Stages, obs: Observability, onError: (err: unknown, ctx: RequestContext) => void, log: Logger): Listener {
  const relay: Relay = createRelay({
    socketPath: config.upstream,
    run: createStageRunner(stages, onError),
    onFault: (err) => log.error({ err }, 'relay fault: the connection was cut'),
    onSendBuffer: (r) => {
      const line = sendBufferLog(r);
      log[line.level](line.fields, line.msg);
    },
    observer: obs.observer,
    maxHeadBytes: MAX_HEAD_BYTES,
    keepAliveMs: KEEP_ALIVE_MS,
    headersTimeoutMs: HEADERS_TIMEOUT_MS,
  });
  const server: net.Server = tlsOptions
    ? // Half-open for the same reason as the node:http listener: stdin EOF must reach dockerd.
      tls.createServer({ ...tlsOptions, allowHalfOpen: true }, (s) => relay.accept(s))
    : net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => relay.accept(s));
  if (server instanceof tls.Server) server.on('tlsClientError', () => {});
  return {
    server,
    async stop(ms) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        relay.drain();
        const cut = setTimeout(() => relay.destroyAll(), ms);
        server.once('close', () => clearTimeout(cut));
      });
      relay.close();
    },
  };
}
