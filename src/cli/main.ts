#!/usr/bin/env -S node --max-semi-space-size=4
/**
 * dockward serve | policy check | policy explain | token   (interface.md "Commands").
 * Exit codes: 0 ok, 1 a check/explain found a problem or a denial, 2 usage or start-up error.
 */
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { configFilePath, loadConfig } from '../config/load.js';
import { mintToken, readSecret } from '../auth/jwt.js';
import { StartupError, startGateway } from '../main.js';
import { createLogger } from '../log.js';
import { canonicalise } from '../docker/canonical.js';
import { classify } from '../docker/classify.js';
import { readDockerJson } from '../docker/json.js';
import { deriveFacts } from '../docker/facts.js';
import { formatPolicyError, loadPolicyFiles } from '../policy/load.js';
import { explain, formatExplanation } from '../policy/decide.js';

const USAGE = `usage:
  dockward serve   [--config config/dockward.yaml] [--listen HOST:PORT] [--upstream unix:///var/run/docker.sock] [--policy 'policies/*.yaml' ...]
  dockward policy check   [--config F | FILES...]
  dockward policy explain [--config F | --policy FILES] --sub USER [--groups G1,G2] METHOD PATH [--body FILE]
  dockward token   --secret-file F --sub USER [--groups G1,G2] [--ttl 1h]`;

class UsageError extends Error {}

function groupsOf(values: string[] | undefined): string[] {
  return (values ?? []).flatMap((g) => g.split(',')).map((g) => g.trim()).filter(Boolean);
}

/** `90`, `90s`, `15m`, `1h`, `7d` -> seconds. */
export function parseTtl(v: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(v.trim());
  if (!m) throw new UsageError(`--ttl ${JSON.stringify(v)}: expected a number with an optional unit s, m, h or d (e.g. 1h)`);
  const n = Number(m[1]) * ({ '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd']);
  if (n <= 0) throw new UsageError('--ttl must be positive');
  return n;
}

/** Policy files for check/explain: explicit files, or the ones the config names. */
function policyPatterns(files: string[], configFlag: string | undefined): string[] {
  if (files.length > 0) return files;
  const loaded = loadConfig(configFilePath(configFlag, process.env), {}, process.env);
  if (!loaded.ok || !loaded.config) throw new StartupError(['invalid configuration:', ...loaded.errors]);
  return loaded.config.policies;
}

async function serve(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string' }, listen: { type: 'string' }, upstream: { type: 'string' }, policy: { type: 'string', multiple: true } },
    strict: true,
  });
  const log = createLogger();
  // A SIGHUP while starting would otherwise end the process (its default action): the policy
  // being loaded at start-up is read after the signal anyway.
  const ignoreHup = () => log.info('SIGHUP during start-up ignored: the files are being read now');
  process.on('SIGHUP', ignoreHup);
  const running = await startGateway(configFilePath(values.config, process.env), { listen: values.listen, upstream: values.upstream, policies: values.policy }, log);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, graceMs: running.graceMs }, 'shutting down: no new connections; requests under way get the grace period, then streams are cut');
    // stop() ends within the grace period; this only catches a stop that hangs.
    const hard = setTimeout(() => {
      log.error('shutdown did not finish in time; exiting');
      process.exit(1);
    }, running.graceMs + 5_000);
    hard.unref();
    running.stop().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  // `systemctl reload dockward` / `kill -HUP`: policy, TLS material and JWKS, without a restart.
  process.off('SIGHUP', ignoreHup);
  process.on('SIGHUP', () => {
    if (stopping) return;
    void running.reload('signal');
  });
  return new Promise<number>(() => {});
}

async function policyCheck(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { config: { type: 'string' } }, allowPositionals: true, strict: true });
  const r = await loadPolicyFiles(policyPatterns(positionals, values.config), { cwd: process.cwd() });
  if (!r.ok) {
    for (const e of r.errors) process.stderr.write(formatPolicyError(e) + '\n');
    process.stderr.write(`${r.errors.length} error(s)\n`);
    return 1;
  }
  process.stdout.write(`ok: ${r.files.length} file(s): ${r.files.join(', ')}\n`);
  return 0;
}

async function policyExplain(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { config: { type: 'string' }, policy: { type: 'string', multiple: true }, sub: { type: 'string' }, groups: { type: 'string', multiple: true }, body: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length !== 2 || !values.sub) throw new UsageError('policy explain needs --sub USER, METHOD and PATH');
  const [method, url] = [positionals[0]!.toUpperCase(), positionals[1]!];
  const r = await loadPolicyFiles(policyPatterns(values.policy ?? [], values.config), { cwd: process.cwd() });
  if (!r.ok) {
    for (const e of r.errors) process.stderr.write(formatPolicyError(e) + '\n');
    return 2;
  }
  const c = canonicalise(url);
  if (!c.ok) {
    process.stdout.write(`refused before policy: ${c.reason} (HTTP ${c.status})\n`);
    return 1;
  }
  const cls = classify(method, c.request.path);
  let body: unknown;
  if (values.body) {
    const j = readDockerJson(readFileSync(values.body, 'utf8'));
    if (!j.ok) {
      process.stdout.write(`refused before policy: cannot read the body as dockerd would: ${j.reason} (HTTP 400)\n`);
      return 1;
    }
    body = j.value;
  }
  // The same facts `serve` derives, so explain shows the decision the gateway would take.
  const derived = deriveFacts({ action: cls.action, body, apiVersion: c.request.apiVersion });
  if (derived && !derived.ok) {
    process.stdout.write(`refused before policy: cannot read the ${cls.action} body exactly as dockerd would: ${derived.reason} (HTTP 400)\n`);
    return 1;
  }
  const subject = { user: values.sub, groups: groupsOf(values.groups), via: 'jwt' as const };
  const result = explain(r.policy, { subject, action: cls.action, query: c.request.query, ...(c.request.repeated ? { queryRepeated: c.request.repeated } : {}), body, ...(derived ? { facts: derived.facts } : {}) });
  process.stdout.write(`request: ${method} ${c.request.path}${c.request.rawQuery ? '?' + c.request.rawQuery : ''}\n`);
  process.stdout.write(`subject: user ${subject.user}, groups [${subject.groups.join(', ')}]\n`);
  process.stdout.write(`action:  ${cls.action}${Object.keys(cls.params).length ? ' ' + JSON.stringify(cls.params) : ''}\n`);
  process.stdout.write(formatExplanation(result) + '\n');
  return result.decision.effect === 'allow' ? 0 : 1;
}

function token(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    options: { 'secret-file': { type: 'string' }, sub: { type: 'string' }, groups: { type: 'string', multiple: true }, ttl: { type: 'string', default: '1h' } },
    strict: true,
  });
  if (!values['secret-file'] || !values.sub) throw new UsageError('token needs --secret-file F and --sub USER');
  process.stdout.write(mintToken(readSecret(values['secret-file']), { sub: values.sub, groups: groupsOf(values.groups) }, parseTtl(values.ttl!)) + '\n');
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, sub, ...rest] = argv;
  try {
    if (cmd === 'serve') return await serve(argv.slice(1));
    if (cmd === 'policy' && sub === 'check') return await policyCheck(rest);
    if (cmd === 'policy' && sub === 'explain') return await policyExplain(rest);
    if (cmd === 'token') return token(argv.slice(1));
    if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
      process.stdout.write(USAGE + '\n');
      return cmd === undefined ? 2 : 0;
    }
    throw new UsageError(`unknown command ${JSON.stringify(argv.slice(0, 2).join(' '))}`);
  } catch (err) {
    if (err instanceof StartupError) {
      process.stderr.write(`dockward: cannot start:\n  ${err.errors.join('\n  ')}\n`);
      return 2;
    }
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`dockward: ${(err as Error).message}\n${USAGE}\n`);
      return 2;
    }
    process.stderr.write(`dockward: ${(err as Error).message}\n`);
    return 2;
  }
}

main(process.argv.slice(2)).then((code) => process.exit(code));
