/**
 * Every policy file shipped in policies/ loads with the REAL action catalogue and behaves as
 * its comments (and policy-language.md) say.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ACTIONS } from '../../src/docker/catalogue.js';
import { decide } from '../../src/policy/decide.js';
import { formatPolicyError, loadPolicyFiles } from '../../src/policy/load.js';
import type { CompiledPolicy } from '../../src/policy/types.js';
import type { DecisionInput, Identity, TargetFacts } from '../../src/types.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SHIPPED = [
  'policies/default.yaml',
  ...readdirSync(path.join(ROOT, 'policies/examples'))
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => `policies/examples/${f}`),
];

async function load(...files: string[]): Promise<CompiledPolicy> {
  const r = await loadPolicyFiles(files, { cwd: ROOT });
  if (!r.ok) throw new Error(r.errors.map(formatPolicyError).join('\n'));
  return r.policy;
}

const alice: Identity = { user: 'alice', groups: [], via: 'jwt' };
const dave: Identity = { user: 'dave', groups: ['dev'], via: 'jwt' };
const bob: Identity = { user: 'bob', groups: ['ops'], via: 'mtls' };
const anon: Identity = { user: 'anonymous', groups: [], via: 'anonymous' };

function req(subject: Identity, action: string, extra: Partial<DecisionInput> = {}): DecisionInput {
  return { subject, action, query: {}, ...extra };
}

describe('shipped policies', () => {
  it('ships the default policy and the documented examples', () => {
    expect(SHIPPED).toEqual([
      'policies/default.yaml',
      'policies/examples/ci-runner.yaml',
      'policies/examples/dev-creates-safe-containers.yaml',
      'policies/examples/dev-runs-containers.yaml',
      'policies/examples/everyone-reads.yaml',
      'policies/examples/nobody-exports-prod.yaml',
      'policies/examples/only-owners-kill.yaml',
      'policies/examples/teams.yaml',
    ]);
  });

  it.each(SHIPPED)('%s loads with the real catalogue', async (file) => {
    const r = await loadPolicyFiles([file], { cwd: ROOT });
    expect(r.ok ? [] : r.errors.map(formatPolicyError)).toEqual([]);
  });

  it('all shipped files load together (rule names are unique)', async () => {
    const r = await loadPolicyFiles(SHIPPED, { cwd: ROOT });
    expect(r.ok ? [] : r.errors.map(formatPolicyError)).toEqual([]);
  });
});

describe('policies/default.yaml: everyone authenticated reads metadata, nobody writes', () => {
  it('allows exactly the read actions, and nothing else', async () => {
    const p = await load('policies/default.yaml');
    const allowed = ACTIONS.filter((a) => decide(p, req(bob, a.name)).effect === 'allow').map((a) => a.name);
    expect(allowed.sort()).toEqual([
      'container.inspect',
      'container.list',
      'image.inspect',
      'image.list',
      'network.inspect',
      'network.list',
      'system.info',
      'system.ping',
      'system.ping.head',
      'system.version',
      'volume.inspect',
      'volume.list',
    ]);
  });

  it.each([
    ['container logs (application output)', 'container.logs'],
    ['container export (the whole file system)', 'container.export'],
    ['container archive (docker cp out)', 'container.archive'],
    ['image save', 'image.get'],
    ['creating a container', 'container.create'],
    ['exec', 'container.exec'],
    ['an unknown request', 'unknown'],
  ])('denies %s', async (_name, action) => {
    const p = await load('policies/default.yaml');
    expect(decide(p, req(alice, action))).toEqual({ effect: 'deny', rule: 'default-deny', reason: `no rule allows ${action} for user:alice` });
  });

  it('does not let anonymous callers read', async () => {
    const p = await load('policies/default.yaml');
    expect(decide(p, req(anon, 'system.ping.head')).effect).toBe('deny');
  });
});

describe('policies/examples: behave as policy-language.md describes', () => {
  const target = (t: Partial<TargetFacts>): TargetFacts => ({ kind: 'container', labels: {}, ...t });
  const safeCreate = {
    'create.privileged': false,
    'create.image': 'busybox:1.36',
    'create.capAdd': ['NET_BIND_SERVICE'],
    'create.hostPaths': ['/srv/data/app'],
    'create.hostNamespaces': [],
    'create.devices': [],
  };

  it.each([
    ['everyone-reads: any caller lists containers', 'everyone-reads.yaml', req(bob, 'container.list'), 'allow', 'everyone-reads'],
    ['everyone-reads: the docker CLI ping', 'everyone-reads.yaml', req(bob, 'system.ping.head'), 'allow', 'everyone-reads'],
    ['everyone-reads: no writes', 'everyone-reads.yaml', req(bob, 'container.kill'), 'deny', 'default-deny'],
    ['dev-runs-containers: group dev kills', 'dev-runs-containers.yaml', req(dave, 'container.kill'), 'allow', 'dev-runs-containers'],
    ['dev-runs-containers: alice kills', 'dev-runs-containers.yaml', req(alice, 'container.kill'), 'allow', 'dev-runs-containers'],
    ['dev-runs-containers: ops does not', 'dev-runs-containers.yaml', req(bob, 'container.kill'), 'deny', 'default-deny'],
    ['dev-runs-containers: no export', 'dev-runs-containers.yaml', req(dave, 'container.export'), 'deny', 'default-deny'],
    ['dev-creates-safe-containers: without create facts, nothing (fail closed)', 'dev-creates-safe-containers.yaml', req(dave, 'container.create'), 'deny', 'default-deny'],
    ['dev-creates-safe-containers: a safe create, once facts exist', 'dev-creates-safe-containers.yaml', req(dave, 'container.create', { facts: safeCreate }), 'allow', 'dev-creates-safe-containers'],
    ['dev-creates-safe-containers: privileged', 'dev-creates-safe-containers.yaml', req(dave, 'container.create', { facts: { ...safeCreate, 'create.privileged': true } }), 'deny', 'default-deny'],
    ['dev-creates-safe-containers: another image', 'dev-creates-safe-containers.yaml', req(dave, 'container.create', { facts: { ...safeCreate, 'create.image': 'alpine:3' } }), 'deny', 'default-deny'],
    ['dev-creates-safe-containers: SYS_ADMIN', 'dev-creates-safe-containers.yaml', req(dave, 'container.create', { facts: { ...safeCreate, 'create.capAdd': ['SYS_ADMIN'] } }), 'deny', 'default-deny'],
    ['dev-creates-safe-containers: /etc mounted', 'dev-creates-safe-containers.yaml', req(dave, 'container.create', { facts: { ...safeCreate, 'create.hostPaths': ['/srv/data/../../etc'] } }), 'deny', 'default-deny'],
    ['dev-creates-safe-containers: host pid', 'dev-creates-safe-containers.yaml', req(dave, 'container.create', { facts: { ...safeCreate, 'create.hostNamespaces': ['pid'] } }), 'deny', 'default-deny'],
    ['only-owners-kill: without target facts, denies everyone (fail closed)', 'only-owners-kill.yaml', req(alice, 'container.kill'), 'deny', 'only-owners-kill'],
    ['only-owners-kill: the owner is not denied', 'only-owners-kill.yaml', req(alice, 'container.kill', { target: target({ owner: 'alice' }) }), 'deny', 'default-deny'],
    ['only-owners-kill: another user is', 'only-owners-kill.yaml', req(bob, 'container.delete', { target: target({ owner: 'alice' }) }), 'deny', 'only-owners-kill'],
    ['nobody-exports-prod: prod', 'nobody-exports-prod.yaml', req(alice, 'container.export', { target: target({ labels: { env: 'prod' } }) }), 'deny', 'nobody-exports-prod'],
    ['nobody-exports-prod: dev is not denied by it', 'nobody-exports-prod.yaml', req(alice, 'container.archive', { target: target({ labels: { env: 'dev' } }) }), 'deny', 'default-deny'],
    ['nobody-exports-prod: without target facts, denies (fail closed)', 'nobody-exports-prod.yaml', req(alice, 'container.export'), 'deny', 'nobody-exports-prod'],
  ] as const)('%s', async (_name, file, input, effect, rule) => {
    const p = await load(`policies/examples/${file}`);
    const d = decide(p, input);
    expect([d.effect, d.rule]).toEqual([effect, rule]);
  });

  it('the owner passes only-owners-kill when an allow rule lets them kill', async () => {
    const p = await load('policies/examples/dev-runs-containers.yaml', 'policies/examples/only-owners-kill.yaml');
    expect(decide(p, req(dave, 'container.kill', { target: target({ owner: 'dave' }) })).effect).toBe('allow');
    expect(decide(p, req(dave, 'container.kill', { target: target({ owner: 'alice' }) }))).toEqual({
      effect: 'deny',
      rule: 'only-owners-kill',
      reason: 'target.owner != "dave", request has "alice"',
    });
  });
});
