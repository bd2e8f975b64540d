import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Counter, Gauge, Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createPolicyReloader, watchPolicyFiles, type PolicyWatcher } from '../../src/config/reload.js';
import { decide } from '../../src/policy/decide.js';
import { loadPolicyFiles } from '../../src/policy/load.js';
import type { DecisionInput } from '../../src/types.js';

const ALLOW_PS = `rules:\n  - name: everyone-lists\n    effect: allow\n    subjects: ["*"]\n    actions: [container.list]\n`;
const ALLOW_LOGS = `rules:\n  - name: everyone-reads-logs\n    effect: allow\n    subjects: ["*"]\n    actions: [container.logs, container.list]\n`;
const BROKEN = `rules:\n  - name: typo\n    effect: allow\n    subjects: ["*"]\n    actions: [container.lisst]\n  - name: typo\n    effect: maybe\n    subjects: ["*"]\n    actions: [container.list]\n`;

const ps: DecisionInput = { subject: { user: 'alice', groups: [], via: 'jwt' }, action: 'container.list', query: {} };
const logs: DecisionInput = { ...ps, action: 'container.logs' };

function tempDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'dw-reload-'));
}

/** A logger whose JSON lines the test reads, and the two policy metrics on a private registry. */
function observed() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const registry = new Registry();
  const metrics = {
    policyReloads: new Counter({ name: 'dockward_policy_reloads_total', help: 'h', labelNames: ['result'] as const, registers: [registry] }),
    policyRules: new Gauge({ name: 'dockward_policy_rules', help: 'h', registers: [registry] }),
  };
  const count = async (result: string) => (await metrics.policyReloads.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
  return { log: pino({ level: 'info' }, sink), lines, metrics, count, rules: async () => (await metrics.policyRules.get()).values[0]?.value };
}

async function reloaderFor(dir: string, text: string) {
  const file = path.join(dir, 'policy.yaml');
  writeFileSync(file, text);
  const first = await loadPolicyFiles([file], { cwd: dir });
  if (!first.ok) throw new Error('fixture policy does not load');
  const o = observed();
  const reloader = createPolicyReloader({ patterns: [file], cwd: dir, initial: first.policy, metrics: o.metrics, log: o.log });
  return { file, reloader, ...o, decideNow: (input: DecisionInput) => decide(reloader.holder.current, input) };
}

describe('policy reload', () => {
  it('swaps in a valid new policy and counts a success', async () => {
    const r = await reloaderFor(tempDir(), ALLOW_PS);
    expect(r.decideNow(logs).effect).toBe('deny');
    writeFileSync(r.file, ALLOW_LOGS);
    expect(await r.reloader.reload('signal')).toMatchObject({ ok: true, rules: 1 });
    expect(r.decideNow(logs)).toMatchObject({ effect: 'allow', rule: 'everyone-reads-logs' });
    expect(await r.count('success')).toBe(1);
    expect(await r.rules()).toBe(1);
  });

  it('keeps the policy in force when the new one does not load, logs every error and counts it', async () => {
    const r = await reloaderFor(tempDir(), ALLOW_PS);
    const before = r.reloader.holder.current;
    writeFileSync(r.file, BROKEN);
    const result = await r.reloader.reload('watch');
    expect(result.ok).toBe(false);
    const errors = result.ok ? [] : result.errors;
    expect(errors.length).toBeGreaterThanOrEqual(3);
    expect(r.reloader.holder.current).toBe(before);
    expect(r.decideNow(ps).effect).toBe('allow');
    expect(await r.count('error')).toBe(1);
    const logged = r.lines.filter((l) => l.msg === 'policy reload: error').map((l) => l.error);
    expect(logged).toEqual(errors);
    expect(errors.join('\n')).toMatch(/policy\.yaml:\d+:\d+: .*container\.lisst/);
    expect(r.lines.some((l) => l.msg === 'policy reload failed: the policy in force is kept' && l.level === 50)).toBe(true);
  });

  it('keeps the policy in force when the file disappears', async () => {
    const r = await reloaderFor(tempDir(), ALLOW_PS);
    rmSync(r.file);
    expect(await r.reloader.reload('watch')).toMatchObject({ ok: false, errors: [expect.stringMatching(/no such file/)] });
    expect(r.decideNow(ps).effect).toBe('allow');
  });

  it('leaves a decision taken before the swap as it was: each request is decided once', async () => {
    const r = await reloaderFor(tempDir(), ALLOW_LOGS);
    const underWay = r.decideNow(logs);
    writeFileSync(r.file, ALLOW_PS);
    await r.reloader.reload('signal');
    expect(underWay.effect).toBe('allow');
    expect(r.decideNow(logs).effect).toBe('deny');
  });

  it('serialises concurrent reloads and always ends on the newest file content', async () => {
    const r = await reloaderFor(tempDir(), ALLOW_PS);
    const first = r.reloader.reload('signal');
    writeFileSync(r.file, ALLOW_LOGS);
    const second = r.reloader.reload('watch');
    const third = r.reloader.reload('watch');
    expect(third).toBe(second);
    await Promise.all([first, second]);
    expect(r.decideNow(logs).effect).toBe('allow');
    expect(await r.count('success')).toBe(2);
  });
});

describe('watchPolicyFiles', () => {
  let watcher: PolicyWatcher | undefined;
  afterEach(() => watcher?.close());

  /** Resolves with how many times onChange ran once the files have been quiet for a while. */
  function watchCounting(patterns: string[], cwd: string) {
    let calls = 0;
    let wake: (() => void) | undefined;
    watcher = watchPolicyFiles(patterns, cwd, () => {
      calls += 1;
      wake?.();
    }, { debounceMs: 50 });
    return {
      calls: () => calls,
      next: (timeoutMs = 5000) =>
        new Promise<boolean>((resolve) => {
          const t = setTimeout(() => resolve(false), timeoutMs);
          wake = () => {
            clearTimeout(t);
            wake = undefined;
            resolve(true);
          };
        }),
    };
  }

  it('reloads once for a burst of writes to a named file', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'policy.yaml'), ALLOW_PS);
    const w = watchCounting([path.join(dir, 'policy.yaml')], dir);
    const next = w.next();
    for (let i = 0; i < 5; i++) writeFileSync(path.join(dir, 'policy.yaml'), ALLOW_PS + `# ${i}\n`);
    expect(await next).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(w.calls()).toBe(1);
  });

  it('sees a file replaced by rename, as editors and config management do', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'policy.yaml'), ALLOW_PS);
    const w = watchCounting([path.join(dir, 'policy.yaml')], dir);
    writeFileSync(path.join(dir, '.policy.yaml.tmp'), ALLOW_LOGS);
    const next = w.next();
    renameSync(path.join(dir, '.policy.yaml.tmp'), path.join(dir, 'policy.yaml'));
    expect(await next).toBe(true);
    // ...and keeps watching after the file it named was replaced.
    const again = w.next();
    writeFileSync(path.join(dir, 'policy.yaml'), ALLOW_PS);
    expect(await again).toBe(true);
  });

  it('follows a glob: a new matching file triggers, other files in the directory do not', async () => {
    const dir = tempDir();
    mkdirSync(path.join(dir, 'policies'));
    writeFileSync(path.join(dir, 'policies', 'a.yaml'), ALLOW_PS);
    const w = watchCounting(['policies/*.yaml'], dir);
    const quiet = w.next(600);
    writeFileSync(path.join(dir, 'policies', 'audit.log'), 'x\n');
    writeFileSync(path.join(dir, 'policies', 'notes.txt'), 'x\n');
    expect(await quiet).toBe(false);
    const next = w.next();
    writeFileSync(path.join(dir, 'policies', 'b.yaml'), ALLOW_LOGS);
    expect(await next).toBe(true);
  });

  it('reports a directory it cannot watch instead of failing', () => {
    const errors: string[] = [];
    watcher = watchPolicyFiles(['/nonexistent-dockward-dir/p.yaml'], '/', () => {}, { debounceMs: 50, onError: (dir) => errors.push(dir) });
    expect(errors).toEqual(['/nonexistent-dockward-dir']);
  });
});
