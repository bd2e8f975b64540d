/**
 * The one strict schema of config/dockward.yaml (interface.md). Unknown keys are errors, every
 * error is reported at once, and anything that would leave the gateway open is refused here,
 * at start-up, rather than discovered at request time.
 */
import { z } from 'zod';

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

export const listenAddress = z
  .string()
  .regex(HOST_PORT, 'must be HOST:PORT, e.g. 127.0.0.1:4000')
  .refine((v) => Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, 'port must be 0-65535');

/** `unix:///var/run/docker.sock` or a bare absolute socket path. */
export const upstreamAddress = z
  .string()
  .regex(/^(unix:\/\/)?\/\S+$/, 'must be unix:///path/to/docker.sock (only unix sockets are supported)');

/** Every algorithm the gateway can verify; `none` is deliberately absent and cannot be configured. */
export const JWT_ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

/** Loopback hosts: a listener there is reachable from this machine only. */
const LOOPBACK_HOST = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[?::1\]?)$/i;

/** HOST:PORT split at its last colon, the host without IPv6 brackets. */
export function splitHostPort(hostPort: string): { host: string; port: number } {
  const i = hostPort.lastIndexOf(':');
  return { host: hostPort.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(hostPort.slice(i + 1)) };
}

/** The host part of HOST:PORT, without IPv6 brackets. */
export function hostOf(hostPort: string): string {
  return splitHostPort(hostPort).host;
}

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOST.test(host);
}

const jwksUrl = z
  .string()
  .url()
  // A JWKS fetched over plain HTTP lets anyone on the path hand the gateway their own signing
  // keys; plain HTTP is only accepted from this machine (an IdP sidecar, the tests).
  .refine((u) => {
    const url = new URL(u);
    return url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname));
  }, 'must be an https:// URL (http:// only on a loopback host)');

const jwtSchema = z
  .object({
    algorithms: z
      .array(z.enum(JWT_ALGORITHMS, { error: (i) => `unsupported algorithm ${JSON.stringify(i.input)} (allowed: ${JWT_ALGORITHMS.join(', ')}; "none" is never accepted)` }))
      .min(1)
      .default(['HS256']),
    secretFile: z.string().min(1).optional(),
    /** Generate `secretFile` with 48 random bytes when it does not exist (the shipped local config). */
    createSecretIfMissing: z.boolean().default(false),
    publicKeyFile: z.string().min(1).optional(),
    /** A JWK Set (RFC 7517) in a file; re-read on SIGHUP, on an unknown `kid` and when older than jwksCacheSeconds. */
    jwksFile: z.string().min(1).optional(),
    /** The identity provider's JWKS endpoint (OIDC `jwks_uri`). */
    jwksUrl: jwksUrl.optional(),
    /** PEM CA bundle for an https jwksUrl signed by a private CA (default: the system CAs). */
    jwksCaFile: z.string().min(1).optional(),
    /** How long a fetched key set is used before it is fetched again (in the background). */
    jwksCacheSeconds: z.number().int().min(10).max(86_400).default(600),
    /** At most one fetch per this many seconds for tokens naming an unknown `kid`. */
    jwksRefetchSeconds: z.number().int().min(1).max(3600).default(30),
    issuer: z.string().min(1).optional(),
    audience: z.string().min(1).optional(),
    userClaim: z.string().min(1).default('sub'),
    groupsClaim: z.string().min(1).default('groups'),
    clockToleranceSeconds: z.number().int().min(0).max(300).default(0),
  })
  .strict()
  .superRefine((j, ctx) => {
    const hs = j.algorithms.filter((a) => a.startsWith('HS'));
    const asym = j.algorithms.filter((a) => !a.startsWith('HS'));
    if (hs.length > 0 && !j.secretFile) {
      ctx.addIssue({ code: 'custom', path: ['secretFile'], message: `algorithms ${hs.join(', ')} need secretFile` });
    }
    if (asym.length > 0 && !j.publicKeyFile && !j.jwksFile && !j.jwksUrl) {
      ctx.addIssue({ code: 'custom', path: ['publicKeyFile'], message: `algorithms ${asym.join(', ')} need publicKeyFile, jwksFile or jwksUrl` });
    }
    if (j.secretFile && hs.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['secretFile'], message: 'secretFile is set but no HS* algorithm is allowed' });
    }
    for (const k of ['publicKeyFile', 'jwksFile', 'jwksUrl'] as const) {
      if (j[k] && asym.length === 0) {
        ctx.addIssue({ code: 'custom', path: [k], message: `${k} is set but no RS*/PS*/ES*/EdDSA algorithm is allowed` });
      }
    }
    if (j.jwksFile && j.jwksUrl) {
      ctx.addIssue({ code: 'custom', path: ['jwksUrl'], message: 'set jwksFile or jwksUrl, not both' });
    }
    if (j.jwksCaFile && !j.jwksUrl?.startsWith('https:')) {
      ctx.addIssue({ code: 'custom', path: ['jwksCaFile'], message: 'jwksCaFile is only used with an https:// jwksUrl' });
    }
  });

/** Where the user name of a client certificate comes from. */
export const MTLS_USER_SOURCES = ['cn', 'san-email', 'san-dns', 'san-uri'] as const;

const mtlsSchema = z
  .object({
    /** `cn`: the subject's common name; `san-*`: the first subjectAltName of that type. */
    user: z.enum(MTLS_USER_SOURCES).default('cn'),
    /** `ou`: every organizational unit of the subject; `map`: `groupMap[user]`; `none`. */
    groups: z.enum(['ou', 'map', 'none']).default('ou'),
    groupMap: z.record(z.string().min(1), z.array(z.string().min(1))).optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.groups === 'map' && !m.groupMap) ctx.addIssue({ code: 'custom', path: ['groupMap'], message: 'groups: map needs groupMap (user name -> list of groups)' });
    if (m.groups !== 'map' && m.groupMap) ctx.addIssue({ code: 'custom', path: ['groupMap'], message: 'groupMap is only used with groups: map' });
  });

export const configSchema = z
  .object({
    listen: listenAddress.default('127.0.0.1:4000'),
    /**
     * A listener on a non-loopback address without `tls` sends bearer tokens in clear text: the
     * gateway refuses to start that way unless this says the operator means it (e.g. TLS is
     * terminated by a proxy on the same host).
     */
    insecureListen: z.boolean().default(false),
    upstream: upstreamAddress.default('unix:///var/run/docker.sock'),
    /**
     * How allowed requests reach the daemon:
     * - `relay` (default): the gateway reads request heads itself and relays the daemon's answer
     *   bytes on a daemon connection paired with the client's (src/relay/server.ts);
     * - `direct`: a node:http server and Node's http client on a keep-alive agent;
     * - `http-proxy`: a node:http server and http-proxy.
     * All three run the same stages and relay the same bytes; relay costs about half the CPU per
     * request of direct, and direct ~100 µs less than http-proxy (docs/performance.md).
     */
    upstreamClient: z.enum(['relay', 'direct', 'http-proxy']).default('relay'),
    tls: z
      .object({
        cert: z.string().min(1),
        key: z.string().min(1),
        /** CA bundle that signs client certificates: turns on mTLS identities. */
        clientCA: z.string().min(1).optional(),
        /**
         * `require`: the TLS handshake refuses clients without a certificate signed by clientCA
         * (as dockerd --tlsverify does); `optional`: such clients may authenticate with a token.
         */
        clientAuth: z.enum(['require', 'optional']).optional(),
        minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
      })
      .strict()
      .refine((t) => t.clientAuth === undefined || t.clientCA !== undefined, { path: ['clientAuth'], message: 'clientAuth needs clientCA' })
      .optional(),
    auth: z
      .object({
        jwt: jwtSchema.optional(),
        /** How client certificates map to identities (used when tls.clientCA is set). */
        mtls: mtlsSchema.optional(),
        /** When a request carries both a verified client certificate and a token: whose identity counts. */
        precedence: z.enum(['mtls', 'jwt']).default('mtls'),
        anonymous: z.boolean().default(false),
      })
      .strict(),
    policies: z.array(z.string().min(1)).min(1).default(['policies/default.yaml']),
    /** Live policy reload: SIGHUP always; `watch` also reloads when a policy file changes. */
    reload: z
      .object({
        watch: z.boolean().default(true),
        /** Editors write a file in several steps: changes closer together than this are one reload. */
        debounceMs: z.number().int().min(10).max(60_000).default(250),
      })
      .strict()
      .default({ watch: true, debounceMs: 250 }),
    /** SIGTERM: stop accepting, let requests finish for graceSeconds, then cut streams and hijacked sessions. */
    shutdown: z
      .object({ graceSeconds: z.number().int().min(0).max(3600).default(10) })
      .strict()
      .default({ graceSeconds: 10 }),
    ownership: z
      .object({
        ownerLabel: z.string().min(1).default('dockward.owner'),
        teamLabel: z.string().min(1).default('dockward.team'),
      })
      .strict()
      .default({ ownerLabel: 'dockward.owner', teamLabel: 'dockward.team' }),
    metrics: z
      .object({
        listen: listenAddress.default('127.0.0.1:9400'),
        /** Adds dockward_user_requests_total{user}: user names become label values (an opt-in, interface.md). */
        userLabel: z.boolean().default(false),
      })
      .strict()
      .default({ listen: '127.0.0.1:9400', userLabel: false }),
    audit: z
      .object({ file: z.string().min(1).default('-') })
      .strict()
      .default({ file: '-' }),
    limits: z
      .object({ inspectedBodyBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(1048576) })
      .strict()
      .default({ inspectedBodyBytes: 1048576 }),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (!c.auth.jwt && !c.auth.anonymous && !c.tls?.clientCA) {
      ctx.addIssue({ code: 'custom', path: ['auth'], message: 'no way to authenticate callers: configure auth.jwt or tls.clientCA (or set auth.anonymous: true deliberately)' });
    }
    if (c.auth.mtls && !c.tls?.clientCA) {
      ctx.addIssue({ code: 'custom', path: ['auth', 'mtls'], message: 'auth.mtls needs tls.clientCA (client certificates are only asked for under TLS)' });
    }
    if (!c.tls && !c.insecureListen && !isLoopbackHost(hostOf(c.listen))) {
      ctx.addIssue({
        code: 'custom',
        path: ['listen'],
        message: `${c.listen} is not a loopback address and tls is not configured: tokens would cross the network in clear text; configure tls (cert, key) or set insecureListen: true`,
      });
    }
  });

export type Config = z.infer<typeof configSchema>;
export type JwtConfig = NonNullable<Config['auth']['jwt']>;
export type MtlsConfig = z.infer<typeof mtlsSchema>;
export type TlsConfig = NonNullable<Config['tls']>;
