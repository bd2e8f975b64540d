/**
 * Live policy reload (SIGHUP, and a change to a policy file): load and compile the whole policy
 * again, then swap it in with one assignment. A policy that does not load keeps the one in
 * force - every error is logged and `dockward_policy_reloads_total{result="error"}` counts it -
 * so an operator's typo never opens (or closes) the gateway.
 *
 * Requests are decided once, when they reach the authorize stage, against `holder.current` at
 * that moment: a swap never re-decides a request under way, and streams and hijacked sessions
 * that are already open are not touched.
 */
import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import picomatch from 'picomatch';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { formatPolicyError, loadPolicyFiles, type LoadOptions, type LoadResult } from '../policy/load.js';
import { ruleCount } from '../policy/decide.js';
import type { CompiledPolicy } from '../policy/types.js';

/** The policy in force. Read `current` once per decision; only the reloader assigns it. */
export interface PolicyHolder {
  readonly current: CompiledPolicy;
}

export type ReloadTrigger = 'signal' | 'watch' | 'api';

export type ReloadResult =
  | { readonly ok: true; readonly rules: number; readonly files: string[] }
  | { readonly ok: false; readonly errors: string[] };

export interface PolicyReloader {
  readonly holder: PolicyHolder;
  /** Reloads now; concurrent calls are serialised (one more load runs after the current one). */
  reload(trigger: ReloadTrigger): Promise<ReloadResult>;
}

export interface PolicyReloaderOptions {
  patterns: string[];
  cwd: string;
  initial: CompiledPolicy;
  metrics: Pick<Metrics, 'policyReloads' | 'policyRules'>;
  log: Logger;
  /** Tests inject a loader; default loadPolicyFiles. */
  load?: (patterns: string[], opts: LoadOptions) => Promise<LoadResult>;
}

export function createPolicyReloader(opts: PolicyReloaderOptions): PolicyReloader {
  const holder: { current: CompiledPolicy } = { current: opts.initial };
  const load = opts.load ?? loadPolicyFiles;
  let running: Promise<ReloadResult> | undefined;
  let queued: Promise<ReloadResult> | undefined;

  async function once(trigger: ReloadTrigger): Promise<ReloadResult> {
    let r: LoadResult;
    try {
      r = await load(opts.patterns, { cwd: opts.cwd });
    } catch (err) {
      r = { ok: false, errors: [{ file: '(reload)', line: 0, column: 0, message: (err as Error).message }] };
    }
    if (!r.ok) {
      const errors = r.errors.map(formatPolicyError);
      opts.metrics.policyReloads.inc({ result: 'error' });
      for (const error of errors) opts.log.error({ trigger, error }, 'policy reload: error');
      opts.log.error({ trigger, errors: errors.length, rules: ruleCount(holder.current) }, 'policy reload failed: the policy in force is kept');
      return { ok: false, errors };
    }
    holder.current = r.policy;
    const rules = ruleCount(r.policy);
    opts.metrics.policyReloads.inc({ result: 'success' });
    opts.metrics.policyRules.set(rules);
    opts.log.info({ trigger, files: r.files, rules }, 'policy reloaded');
    return { ok: true, rules, files: r.files };
  }

  function reload(trigger: ReloadTrigger): Promise<ReloadResult> {
    if (!running) {
      running = once(trigger).finally(() => {
        running = undefined;
      });
      return running;
    }
    // A change that lands while a load is reading the files must be read too: one more load
    // after this one covers every change made so far.
    queued ??= running.then(() => {
      queued = undefined;
      return reload(trigger);
    });
    return queued;
  }

  return { holder, reload };
}

export interface PolicyWatcher {
  close(): void;
}

export interface WatchOptions {
  debounceMs: number;
  /** A directory that cannot be watched (missing, no permission): SIGHUP still reloads. */
  onError?: (dir: string, err: Error) => void;
}

/**
 * Calls `onChange` (debounced) when a file named by the policy patterns is written, created,
 * renamed or deleted. Directories are watched rather than files: editors and config-management
 * tools replace a file by renaming a new one over it, which a watch on the old file never sees.
 * Other files in those directories (an audit log, editor swap files) do not trigger a reload.
 */
export function watchPolicyFiles(patterns: string[], cwd: string, onChange: () => void, opts: WatchOptions): PolicyWatcher {
  const dirs = new Map<string, { recursive: boolean; matchers: ((rel: string) => boolean)[] }>();
  const add = (dir: string, recursive: boolean, matcher: (rel: string) => boolean) => {
    const d = dirs.get(dir) ?? { recursive: false, matchers: [] };
    d.recursive ||= recursive;
    d.matchers.push(matcher);
    dirs.set(dir, d);
  };
  for (const pattern of patterns) {
    const scan = picomatch.scan(pattern);
    if (!scan.isGlob) {
      const abs = path.resolve(cwd, pattern);
      const name = path.basename(abs);
      add(path.dirname(abs), false, (rel) => rel === name);
    } else {
      const test = picomatch(scan.glob, { windows: false });
      add(path.resolve(cwd, scan.base === '' ? '.' : scan.base), scan.glob.includes('/'), test);
    }
  }

  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const fire = () => {
    if (closed) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      if (!closed) onChange();
    }, opts.debounceMs);
    timer.unref();
  };

  const watchers: FSWatcher[] = [];
  for (const [dir, d] of dirs) {
    try {
      const w = watch(dir, { persistent: false, recursive: d.recursive }, (_event, filename) => {
        // No name (some file systems): reload to be safe. `..data` is the symlink Kubernetes
        // swaps when a mounted ConfigMap changes.
        if (filename === null || filename === undefined) return fire();
        const rel = filename.toString().split(path.sep).join('/');
        if (rel === '..data' || d.matchers.some((m) => m(rel))) fire();
      });
      w.on('error', (err) => {
        opts.onError?.(dir, err);
        w.close();
      });
      watchers.push(w);
    } catch (err) {
      opts.onError?.(dir, err as Error);
    }
  }
  return {
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}
