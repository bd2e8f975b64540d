import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatPolicyError, loadPolicyFiles } from '../../src/policy/load.js';
import type { ActionDef } from '../../src/types.js';

const ACTIONS: readonly ActionDef[] = [
  { name: 'system.ping', operationId: 'SystemPing', method: 'GET', path: '/_ping', body: 'none' },
  { name: 'container.list', operationId: 'ContainerList', method: 'GET', path: '/containers/json', body: 'none' },
];

const ruleFile = (name: string, act = 'system.ping'): string =>
  `rules:\n  - name: ${name}\n    effect: allow\n    subjects: ["*"]\n    actions: [${act}]\n`;

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dockward-policy-'));
  await mkdir(path.join(dir, 'policies', 'team'), { recursive: true });
  await writeFile(path.join(dir, 'policies', 'b.yaml'), ruleFile('b'));
  await writeFile(path.join(dir, 'policies', 'a.yaml'), ruleFile('a', 'container.list'));
  await writeFile(path.join(dir, 'policies', '.a.yaml.swp.yaml'), 'not: [yaml');
  await writeFile(path.join(dir, 'policies', 'notes.txt'), 'not a policy');
  await writeFile(path.join(dir, 'policies', 'team', 'c.yaml'), ruleFile('c'));
  await writeFile(path.join(dir, 'broken.yaml'), 'rules:\n  - name: x\n    effect: sometimes\n    subjects: ["*"]\n    actions: [system.ping]\n');
  await writeFile(path.join(dir, 'dup.yaml'), ruleFile('a'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function load(patterns: string[]) {
  return loadPolicyFiles(patterns, { cwd: dir, actions: ACTIONS });
}

function errorLines(r: Awaited<ReturnType<typeof load>>): string[] {
  return r.ok ? [] : r.errors.map(formatPolicyError);
}

describe('loadPolicyFiles', () => {
  it.each([
    ['a plain file', ['policies/a.yaml'], ['policies/a.yaml']],
    ['a glob, sorted, without dot files, other extensions or subdirectories', ['policies/*.yaml'], ['policies/a.yaml', 'policies/b.yaml']],
    ['a ** glob reaches subdirectories', ['policies/**/*.yaml'], ['policies/a.yaml', 'policies/b.yaml', 'policies/team/c.yaml']],
    ['a file named by two patterns loads once', ['policies/a.yaml', 'policies/*.yaml'], ['policies/a.yaml', 'policies/b.yaml']],
    ['an absolute path', ['ABS/policies/b.yaml'], ['ABS/policies/b.yaml']],
  ])('loads %s', async (_name, patterns, files) => {
    const abs = (p: string): string => p.replace('ABS', dir);
    const r = await load(patterns.map(abs));
    expect(errorLines(r)).toEqual([]);
    expect(r.ok && r.files).toEqual(files.map(abs));
  });

  it.each([
    ['no patterns at all', [], ['(config): no policy files configured: every request would be denied; name at least one file']],
    ['a glob that matches nothing', ['policies/*.yml'], ['policies/*.yml: no policy file matches "policies/*.yml"']],
    ['a glob in a missing directory', ['nowhere/*.yaml'], ['nowhere/*.yaml: no policy file matches "nowhere/*.yaml"']],
    ['a missing file', ['missing.yaml'], ['missing.yaml: cannot read: no such file']],
    ['a directory', ['policies'], ['policies: not a regular file']],
    ['a negated pattern', ['!policies/a.yaml'], ['!policies/a.yaml: negated patterns are not supported: name the files to load']],
    ['a compile error, with the file as configured', ['broken.yaml'], ['broken.yaml:3:13: effect must be allow or deny, not "sometimes"']],
    ['a duplicate rule name across files', ['policies/a.yaml', 'dup.yaml'], ['dup.yaml:2:11: duplicate rule name "a" (first defined at policies/a.yaml:2)']],
    ['every problem at once', ['missing.yaml', 'policies/*.yml', 'broken.yaml'], [
      'policies/*.yml: no policy file matches "policies/*.yml"',
      'missing.yaml: cannot read: no such file',
      'broken.yaml:3:13: effect must be allow or deny, not "sometimes"',
    ]],
  ])('fails closed on %s', async (_name, patterns, errors) => {
    const r = await load(patterns);
    expect(r.ok).toBe(false);
    expect(errorLines(r)).toEqual(errors);
  });
});
