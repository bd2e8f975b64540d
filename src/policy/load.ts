/**
 * The only part of the policy engine that does I/O: expand the configured files and globs,
 * read them, hand the text to compilePolicy.
 *
 * Fail closed: a pattern that matches no file, a file that cannot be read, or any compile
 * error makes the whole load fail. `serve` then refuses to start and a reload keeps the old
 * policy; a half-loaded policy (say, the allow file without the deny file) is never returned.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import picomatch from 'picomatch';
import { ACTIONS } from '../docker/catalogue.js';
import type { ActionDef } from '../types.js';
import { compilePolicy } from './compile.js';
import type { PolicySource } from './compile.js';
import type { CompiledPolicy, PolicyError } from './types.js';

export type LoadResult =
  | { readonly ok: true; readonly policy: CompiledPolicy; readonly files: string[] }
  | { readonly ok: false; readonly errors: PolicyError[] };

export interface LoadOptions {
  /** Relative patterns are resolved against this directory. */
  readonly cwd: string;
  /** Defaults to the real catalogue; tests inject a small one. */
  readonly actions?: readonly ActionDef[];
}

/** A policy file is hand-written text; anything this large is a mistake (a log, an image). */
const MAX_POLICY_FILE_BYTES = 4 * 1024 * 1024;
/** `**` walks stop here; policy trees are shallow, and a symlink loop must not hang start-up. */
const MAX_WALK_DEPTH = 16;

export async function loadPolicyFiles(patterns: string[], opts: LoadOptions): Promise<LoadResult> {
  const errors: PolicyError[] = [];
  if (patterns.length === 0) {
    return { ok: false, errors: [fileError('(config)', 'no policy files configured: every request would be denied; name at least one file')] };
  }
  const files: { display: string; abs: string }[] = [];
  const seen = new Set<string>();
  const add = (display: string, abs: string): void => {
    // Two patterns naming one file must not load its rules twice (duplicate-name errors).
    if (seen.has(abs)) return;
    seen.add(abs);
    files.push({ display, abs });
  };
  for (const pattern of patterns) {
    if (pattern.trim() === '') {
      errors.push(fileError('(config)', 'empty policy file pattern'));
      continue;
    }
    const scan = picomatch.scan(pattern);
    if (scan.negated) {
      errors.push(fileError(pattern, 'negated patterns are not supported: name the files to load'));
      continue;
    }
    if (!scan.isGlob) {
      add(pattern, path.resolve(opts.cwd, pattern));
      continue;
    }
    const matches = await expandGlob(opts.cwd, scan.base, scan.glob);
    if (matches.length === 0) {
      errors.push(fileError(pattern, `no policy file matches "${pattern}"`));
      continue;
    }
    for (const m of matches) add(m.display, m.abs);
  }

  const sources: PolicySource[] = [];
  for (const f of files) {
    try {
      const info = await stat(f.abs);
      if (!info.isFile()) {
        errors.push(fileError(f.display, 'not a regular file'));
        continue;
      }
      if (info.size > MAX_POLICY_FILE_BYTES) {
        errors.push(fileError(f.display, `file is ${info.size} bytes; policy files are limited to ${MAX_POLICY_FILE_BYTES}`));
        continue;
      }
      sources.push({ file: f.display, text: await readFile(f.abs, 'utf8') });
    } catch (e) {
      errors.push(fileError(f.display, `cannot read: ${describeFsError(e)}`));
    }
  }
  // Compile what could be read even when something could not: `policy check` reports every
  // error in one run.
  const result = compilePolicy(sources, { actions: opts.actions ?? ACTIONS });
  errors.push(...result.errors);
  if (errors.length > 0 || result.policy === undefined) return { ok: false, errors };
  return { ok: true, policy: result.policy, files: files.map((f) => f.display) };
}

/** `file:line:col: message`, or `file: message` for errors about the whole file. */
export function formatPolicyError(e: PolicyError): string {
  return e.line > 0 ? `${e.file}:${e.line}:${e.column}: ${e.message}` : `${e.file}: ${e.message}`;
}

function fileError(file: string, message: string): PolicyError {
  return { file, line: 0, column: 0, message };
}

function describeFsError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return (e as Error | undefined)?.message ?? String(e);
}

/**
 * Node 20 has no fs.glob: walk the pattern's static base directory and test each file's path
 * relative to it. Results are sorted so that rule order (and error order) does not depend on
 * the file system's listing order. Dot files are skipped (`*` does not match them), which
 * keeps editor backups like `.default.yaml.swp` out.
 */
async function expandGlob(cwd: string, base: string, glob: string): Promise<{ display: string; abs: string }[]> {
  const test = picomatch(glob, { windows: false });
  const absBase = path.resolve(cwd, base === '' ? '.' : base);
  const maxDepth = glob.includes('**') ? MAX_WALK_DEPTH : glob.split('/').length;
  const out: { display: string; abs: string }[] = [];
  const walk = async (dir: string, rel: string, depth: number): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return; // a missing base directory simply matches nothing, which is reported as such
    }
    for (const entry of entries) {
      const relPath = rel === '' ? entry.name : `${rel}/${entry.name}`;
      const abs = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (depth + 1 < maxDepth) await walk(abs, relPath, depth + 1);
      } else if ((entry.isFile() || entry.isSymbolicLink()) && test(relPath)) {
        out.push({ display: base === '' ? relPath : `${base}/${relPath}`, abs });
      }
    }
  };
  await walk(absBase, '', 0);
  return out.sort((a, b) => (a.display < b.display ? -1 : a.display > b.display ? 1 : 0));
}
