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
export const JWT_ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

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
    jwksFile: z.string().min(1).optional(),
    jwksUrl: z.string().url().optional(),
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
      ctx.addIssue({ code: 'custom', path: ['publicKeyFile'], message: `algorithms ${asym.join(', ')} need publicKeyFile` });
    }
    if (j.secretFile && hs.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['secretFile'], message: 'secretFile is set but no HS* algorithm is allowed' });
    }
    if (j.publicKeyFile && asym.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['publicKeyFile'], message: 'publicKeyFile is set but no RS*/PS*/ES* algorithm is allowed' });
    }
    if (j.jwksFile || j.jwksUrl) {
      ctx.addIssue({ code: 'custom', path: [j.jwksFile ? 'jwksFile' : 'jwksUrl'], message: 'JWKS keys are not supported by this version yet; use publicKeyFile' });
    }
  });

export const configSchema = z
  .object({
    listen: listenAddress.default('127.0.0.1:4000'),
    upstream: upstreamAddress.default('unix:///var/run/docker.sock'),
    tls: z
      .object({
        cert: z.string().min(1),
        key: z.string().min(1),
        clientCA: z.string().min(1).optional(),
      })
      .strict()
      .refine((t) => t.clientCA === undefined, { path: ['clientCA'], message: 'client-certificate identities (mTLS) are not supported by this version yet' })
      .optional(),
    auth: z
      .object({
        jwt: jwtSchema.optional(),
        anonymous: z.boolean().default(false),
      })
      .strict()
      .refine((a) => a.jwt !== undefined || a.anonymous, {
        message: 'no way to authenticate callers: configure auth.jwt (or set auth.anonymous: true deliberately)',
      }),
    policies: z.array(z.string().min(1)).min(1).default(['policies/default.yaml']),
    ownership: z
      .object({
        ownerLabel: z.string().min(1).default('dockward.owner'),
        teamLabel: z.string().min(1).default('dockward.team'),
      })
      .strict()
      .default({ ownerLabel: 'dockward.owner', teamLabel: 'dockward.team' }),
    metrics: z
      .object({ listen: listenAddress.default('127.0.0.1:9400') })
      .strict()
      .default({ listen: '127.0.0.1:9400' }),
    audit: z
      .object({ file: z.string().min(1).default('-') })
      .strict()
      .default({ file: '-' }),
    limits: z
      .object({ inspectedBodyBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(1048576) })
      .strict()
      .default({ inspectedBodyBytes: 1048576 }),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type JwtConfig = NonNullable<Config['auth']['jwt']>;
