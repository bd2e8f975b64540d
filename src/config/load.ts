/**
 * Reads config/dockward.yaml, applies flags and DOCKWARD_* environment overrides
 * (file < flags < env, twelve-factor), validates with the one schema and reports every error
 * at once with the file line it comes from.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { LineCounter, parseDocument, isMap } from 'yaml';
import type { z } from 'zod';
import { configSchema, listenAddress, upstreamAddress, type Config } from './schema.js';

export interface ConfigOverrides {
  listen?: string;
  upstream?: string;
  policies?: string[];
}

export interface ConfigLoadResult {
  ok: boolean;
  config?: Config;
  file: string;
  errors: string[];
}

export const DEFAULT_CONFIG_FILE = 'config/dockward.yaml';

/** Where the config file is: `DOCKWARD_CONFIG` beats `--config` beats the default. */
export function configFilePath(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return env.DOCKWARD_CONFIG || flag || DEFAULT_CONFIG_FILE;
}

export function loadConfig(file: string, flags: ConfigOverrides, env: NodeJS.ProcessEnv, cwd = process.cwd()): ConfigLoadResult {
  let text: string;
  try {
    text = readFileSync(path.resolve(cwd, file), 'utf8');
  } catch (err) {
    return { ok: false, file, errors: [`${file}: cannot read config: ${(err as Error).message}`] };
  }
  return parseConfig(text, file, flags, env, cwd);
}

export function parseConfig(text: string, file: string, flags: ConfigOverrides, env: NodeJS.ProcessEnv, cwd = process.cwd()): ConfigLoadResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true });
  const errors: string[] = [];
  for (const e of doc.errors) {
    const pos = e.linePos?.[0];
    errors.push(`${file}:${pos ? `${pos.line}:${pos.col}` : '?'}: ${e.message.split('\n')[0]}`);
  }
  if (errors.length > 0) return { ok: false, file, errors };
  const raw: unknown = doc.contents === null ? {} : doc.toJS();
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { ok: false, file, errors: [`${file}:1:1: the config must be a mapping of keys (listen, upstream, auth, policies, ...)`] };
  }
  const merged: Record<string, unknown> = { ...(raw as Record<string, unknown>) };

  // Overrides are validated with the same rules as the file, but reported under their own names
  // so that a bad environment value is never silently ignored.
  const override = (source: string, key: 'listen' | 'upstream', value: string | undefined, schema: z.ZodType) => {
    if (value === undefined) return;
    const r = schema.safeParse(value);
    if (!r.success) errors.push(`${source}: ${r.error.issues.map((i) => i.message).join('; ')} (got ${JSON.stringify(value)})`);
    else merged[key] = value;
  };
  override('--listen', 'listen', flags.listen, listenAddress);
  override('--upstream', 'upstream', flags.upstream, upstreamAddress);
  if (flags.policies && flags.policies.length > 0) merged.policies = flags.policies;
  override('DOCKWARD_LISTEN', 'listen', env.DOCKWARD_LISTEN, listenAddress);
  override('DOCKWARD_UPSTREAM', 'upstream', env.DOCKWARD_UPSTREAM, upstreamAddress);

  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const keys = issue.code === 'unrecognized_keys' ? issue.keys.map((k) => [...issue.path, k]) : [issue.path];
      for (const p of keys) {
        const dotted = p.map(String).join('.') || '(top level)';
        const msg = issue.code === 'unrecognized_keys' ? 'unknown key' : issue.message;
        errors.push(`${file}:${lineOf(doc, p, lineCounter)}: ${dotted}: ${msg}`);
      }
    }
  }
  if (errors.length > 0 || !parsed.success) return { ok: false, file, errors };
  return { ok: true, file, config: resolvePaths(parsed.data, cwd), errors: [] };
}

/** The line of the deepest node of `p` that exists in the file (an error on a missing key points at its parent). */
function lineOf(doc: ReturnType<typeof parseDocument>, p: PropertyKey[], lc: LineCounter): string {
  for (let n = p.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(p.slice(0, n) as (string | number)[], true);
    if (node && typeof node === 'object' && 'range' in node && Array.isArray(node.range)) {
      // Point at the key that holds the value: that is what the operator has to edit.
      const offset = (n > 0 ? keyOffset(doc, p.slice(0, n) as (string | number)[]) : undefined) ?? node.range[0];
      const pos = lc.linePos(offset);
      return `${pos.line}:${pos.col}`;
    }
  }
  return '1:1';
}

function keyOffset(doc: ReturnType<typeof parseDocument>, p: (string | number)[]): number | undefined {
  const parent = p.length === 1 ? doc.contents : doc.getIn(p.slice(0, -1), true);
  if (!isMap(parent)) return undefined;
  const pair = parent.items.find((it) => (it.key as { value?: unknown } | null)?.value === p[p.length - 1]);
  const range = (pair?.key as { range?: [number, number, number] } | undefined)?.range;
  return range?.[0];
}

/**
 * Relative file names in the config are relative to the working directory (the project root for
 * `npm start`). Defaults that depend on other keys are filled in here, so that the rest of the
 * program reads one settled value: `tls.clientAuth` is `require` when `clientCA` is set, and
 * `auth.mtls` gets its defaults (user from the CN, groups from the OUs).
 */
function resolvePaths(c: Config, cwd: string): Config {
  const abs = (f: string | undefined) => (f === undefined ? undefined : path.resolve(cwd, f));
  const jwt = c.auth.jwt;
  const tls = c.tls;
  return {
    ...c,
    upstream: c.upstream.replace(/^unix:\/\//, ''),
    tls: tls && {
      ...tls,
      cert: abs(tls.cert)!,
      key: abs(tls.key)!,
      clientCA: abs(tls.clientCA),
      clientAuth: tls.clientCA ? (tls.clientAuth ?? 'require') : undefined,
    },
    auth: {
      ...c.auth,
      jwt: jwt && { ...jwt, secretFile: abs(jwt.secretFile), publicKeyFile: abs(jwt.publicKeyFile), jwksFile: abs(jwt.jwksFile), jwksCaFile: abs(jwt.jwksCaFile) },
      mtls: tls?.clientCA ? (c.auth.mtls ?? { user: 'cn', groups: 'ou' }) : undefined,
    },
    policies: c.policies.map((p) => (path.isAbsolute(p) ? p : path.join(cwd, p))),
    audit: { file: c.audit.file === '-' ? '-' : abs(c.audit.file)! },
  };
}
