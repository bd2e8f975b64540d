import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../../src/policy/compile.js';
import { decide, factNeeds, policyGroups, policyRuleNames, ruleCount } from '../../src/policy/decide.js';
import { formatPolicyError } from '../../src/policy/load.js';
import type { CompiledPolicy } from '../../src/policy/types.js';
import type { ActionDef, BodyKind, DecisionInput, Identity, TargetFacts, TargetKind } from '../../src/types.js';

/** A small fixed catalogue, so these tests do not depend on the real one. */
function action(name: string, body: BodyKind, target?: TargetKind): ActionDef {
  return { name, operationId: name, method: 'POST', path: `/${name}`, body, ...(target ? { target } : {}) };
}
const ACTIONS: readonly ActionDef[] = [
  action('system.ping', 'none'),
  action('container.list', 'none'),
  action('container.inspect', 'none', 'container'),
  action('container.kill', 'none', 'container'),
  action('container.delete', 'none', 'container'),
  action('container.create', 'json'),
  action('container.exec', 'json', 'container'),
  action('container.export', 'none', 'container'),
  action('container.archive', 'none', 'container'),
  action('image.list', 'none'),
];

function policyOf(yaml: string): CompiledPolicy {
  const r = compilePolicy([{ file: 'test.yaml', text: yaml }], { actions: ACTIONS });
  if (r.policy === undefined) throw new Error(r.errors.map(formatPolicyError).join('\n'));
  return r.policy;
}

const alice: Identity = { user: 'alice', groups: ['dev'], via: 'jwt' };
const bob: Identity = { user: 'bob', groups: ['ops'], via: 'jwt' };
const carol: Identity = { user: 'carol', groups: ['ops', 'dev'], via: 'mtls' };
const anon: Identity = { user: 'anonymous', groups: [], via: 'anonymous' };

function req(subject: Identity, act: string, extra: Partial<DecisionInput> = {}): DecisionInput {
  return { subject, action: act, query: {}, ...extra };
}

describe('subjects', () => {
  const policy = policyOf(`
rules:
  - { name: any-caller, effect: allow, subjects: ["*"], actions: [system.ping] }
  - { name: anon-only, effect: allow, subjects: [anonymous], actions: [image.list] }
  - { name: alice-only, effect: allow, subjects: ["user:alice"], actions: [container.list] }
  - { name: dev-only, effect: allow, subjects: ["group:dev"], actions: [container.inspect] }
  - { name: named-anonymous, effect: allow, subjects: ["user:anonymous"], actions: [container.kill] }
`);
  it.each([
    ['"*" matches an authenticated user', alice, 'system.ping', 'allow', 'any-caller'],
    ['"*" matches an mTLS identity', carol, 'system.ping', 'allow', 'any-caller'],
    ['"*" does not match an anonymous caller', anon, 'system.ping', 'deny', 'default-deny'],
    ['anonymous matches an anonymous caller', anon, 'image.list', 'allow', 'anon-only'],
    ['anonymous does not match an authenticated caller', alice, 'image.list', 'deny', 'default-deny'],
    ['user:alice matches alice', alice, 'container.list', 'allow', 'alice-only'],
    ['user:alice does not match bob', bob, 'container.list', 'deny', 'default-deny'],
    ['group:dev matches a member (first group)', alice, 'container.inspect', 'allow', 'dev-only'],
    ['group:dev matches a member (second group)', carol, 'container.inspect', 'allow', 'dev-only'],
    ['group:dev does not match a non-member', bob, 'container.inspect', 'deny', 'default-deny'],
    ['an anonymous caller named "anonymous" is not user:anonymous', anon, 'container.kill', 'deny', 'default-deny'],
    ['a group named like the user does not match user:', { user: 'bob', groups: ['alice'], via: 'jwt' } as Identity, 'container.list', 'deny', 'default-deny'],
  ])('%s', (_name, subject, act, effect, rule) => {
    const d = decide(policy, req(subject, act));
    expect([d.effect, d.rule]).toEqual([effect, rule]);
  });
});

describe('actions and globs', () => {
  const policy = policyOf(`
rules:
  - { name: containers, effect: allow, subjects: ["user:alice"], actions: ["container.*"] }
  - { name: everything, effect: allow, subjects: ["user:bob"], actions: ["*"] }
  - { name: unknown-for-carol, effect: allow, subjects: ["user:carol"], actions: [unknown] }
`);
  it.each([
    ['container.* covers container.kill', alice, 'container.kill', 'allow'],
    ['container.* covers container.export', alice, 'container.export', 'allow'],
    ['container.* does not cover image.list', alice, 'image.list', 'deny'],
    ['"*" covers every catalogue action', bob, 'image.list', 'allow'],
    ['"*" does not cover unknown requests', bob, 'unknown', 'deny'],
    ['unknown is allowed only where named', carol, 'unknown', 'allow'],
    ['an action missing from the catalogue is denied', bob, 'image.frobnicate', 'deny'],
  ])('%s', (_name, subject, act, effect) => {
    expect(decide(policy, req(subject, act)).effect).toBe(effect);
  });
});

describe('deny wins, default deny, and the reasons', () => {
  const policy = policyOf(`
rules:
  - name: dev-runs-containers
    effect: allow
    subjects: ["group:dev"]
    actions: [container.kill, container.delete]
    when:
      query.signal: TERM
  - { name: dev-deletes, effect: allow, subjects: ["group:dev"], actions: [container.delete] }
  - { name: no-delete-for-carol, effect: deny, subjects: ["user:carol"], actions: [container.delete] }
  - name: no-force
    effect: deny
    subjects: ["*"]
    actions: [container.delete]
    when:
      query.force: true
  - { name: ops-exports, effect: allow, subjects: ["group:ops"], actions: [container.export] }
`);
  it.each([
    ['an allow rule allows', alice, 'container.delete', {}, 'allow', 'dev-deletes', 'allowed by rule dev-deletes'],
    ['a deny rule wins over an earlier allow rule', carol, 'container.delete', {}, 'deny', 'no-delete-for-carol', 'container.delete is denied to user:carol'],
    ['a deny rule with conditions names what held', alice, 'container.delete', { force: '1' }, 'deny', 'no-force', 'query.force == true, request has "1"'],
    ['a deny rule whose condition fails does not deny', alice, 'container.delete', { force: '0' }, 'allow', 'dev-deletes', 'allowed by rule dev-deletes'],
    ['no rule for the action', alice, 'image.list', {}, 'deny', 'default-deny', 'no rule allows image.list for user:alice'],
    ['no rule for the subject', bob, 'container.kill', {}, 'deny', 'default-deny', 'no rule allows container.kill for user:bob'],
    ['an allow rule that came close names the failed condition', alice, 'container.kill', { signal: 'KILL' }, 'deny', 'default-deny', 'rule dev-runs-containers needs query.signal == "TERM", request has "KILL"'],
    ['an absent query parameter reads as nothing', alice, 'container.kill', {}, 'deny', 'default-deny', 'rule dev-runs-containers needs query.signal == "TERM", request has nothing'],
    ['the close allow rule passes when its condition holds', alice, 'container.kill', { signal: 'TERM' }, 'allow', 'dev-runs-containers', 'allowed by rule dev-runs-containers'],
    ['anonymous callers are named as such', anon, 'container.kill', {}, 'deny', 'default-deny', 'no rule allows container.kill for anonymous'],
  ])('%s', (_name, subject, act, query, effect, rule, reason) => {
    expect(decide(policy, req(subject, act, { query }))).toEqual({ effect, rule, reason });
  });

  it('names the first close allow rule in policy order', () => {
    const p = policyOf(`
rules:
  - { name: first, effect: allow, subjects: ["group:dev"], actions: [container.kill], when: { query.signal: TERM } }
  - { name: second, effect: allow, subjects: ["user:alice"], actions: [container.kill], when: { query.signal: INT } }
`);
    expect(decide(p, req(alice, 'container.kill', { query: { signal: 'KILL' } })).reason).toBe('rule first needs query.signal == "TERM", request has "KILL"');
  });

  it('reports the deny rule first in policy order when several match', () => {
    const p = policyOf(`
rules:
  - { name: by-group, effect: deny, subjects: ["group:dev"], actions: [container.kill] }
  - { name: by-star, effect: deny, subjects: ["*"], actions: [container.kill] }
  - { name: by-user, effect: deny, subjects: ["user:alice"], actions: [container.kill] }
`);
    expect(decide(p, req(alice, 'container.kill')).rule).toBe('by-group');
  });
});

describe('matchers', () => {
  // One allow rule per row; the row's condition is the rule's only condition.
  const cases: [name: string, act: string, when: string, input: Partial<DecisionInput>, effect: 'allow' | 'deny'][] = [
    // scalar equality on query strings
    ['string == exact', 'container.kill', 'query.signal: TERM', { query: { signal: 'TERM' } }, 'allow'],
    ['string == is case-sensitive', 'container.kill', 'query.signal: TERM', { query: { signal: 'term' } }, 'deny'],
    ['string == absent parameter', 'container.kill', 'query.signal: TERM', {}, 'deny'],
    ['string == "" holds for an absent parameter', 'container.kill', 'query.signal: ""', {}, 'allow'],
    // booleans read from a query string as dockerd's httputils.BoolValue does
    ['bool true vs "1"', 'container.delete', 'query.force: true', { query: { force: '1' } }, 'allow'],
    ['bool true vs "True"', 'container.delete', 'query.force: true', { query: { force: 'True' } }, 'allow'],
    ['bool true vs "yes"', 'container.delete', 'query.force: true', { query: { force: 'yes' } }, 'allow'],
    ['bool true vs "0"', 'container.delete', 'query.force: true', { query: { force: '0' } }, 'deny'],
    ['bool true vs " FALSE " (trimmed, lower-cased)', 'container.delete', 'query.force: true', { query: { force: ' FALSE ' } }, 'deny'],
    ['bool true vs "none"', 'container.delete', 'query.force: true', { query: { force: 'none' } }, 'deny'],
    ['bool true vs NBSP+"no" (Go trims U+00A0)', 'container.delete', 'query.force: true', { query: { force: '\u00a0no' } }, 'deny'],
    ['bool true vs BOM+"false" (Go does not trim U+FEFF: true)', 'container.delete', 'query.force: true', { query: { force: '\ufefffalse' } }, 'allow'],
    ['bool false vs absent', 'container.delete', 'query.force: false', {}, 'allow'],
    ['bool false vs "1"', 'container.delete', 'query.force: false', { query: { force: '1' } }, 'deny'],
    // numbers read from a query string as strconv.ParseInt does
    ['number == "10"', 'container.kill', 'query.t: 10', { query: { t: '10' } }, 'allow'],
    ['number == "+010"', 'container.kill', 'query.t: 10', { query: { t: '+010' } }, 'allow'],
    ['number == "1e1" (not an integer for Go)', 'container.kill', 'query.t: 10', { query: { t: '1e1' } }, 'deny'],
    // JSON body fields, read like Go's decoder
    ['body bool: absent field is false', 'container.create', 'body.HostConfig.Privileged: false', { body: { Image: 'x' } }, 'allow'],
    ['body bool: no body at all is false', 'container.create', 'body.HostConfig.Privileged: false', {}, 'allow'],
    ['body bool: null parent is false', 'container.create', 'body.HostConfig.Privileged: false', { body: { HostConfig: null } }, 'allow'],
    ['body bool: true is not false', 'container.create', 'body.HostConfig.Privileged: false', { body: { HostConfig: { Privileged: true } } }, 'deny'],
    ['body keys match case-insensitively', 'container.create', 'body.HostConfig.Privileged: true', { body: { hostconfig: { PRIVILEGED: true } } }, 'allow'],
    ['body keys fold U+017F to S, as Go does', 'container.create', 'body.HostConfig.Privileged: true', { body: { 'Ho\u017ftConfig': { Privileged: true } } }, 'allow'],
    ['body keys do not fold dotless i onto i, as Go does not', 'container.create', 'body.HostConfig.Privileged: true', { body: { HostConfig: { 'Priv\u0131leged': true } } }, 'deny'],
    ['body string "true" is not boolean true', 'container.create', 'body.HostConfig.Privileged: true', { body: { HostConfig: { Privileged: 'true' } } }, 'deny'],
    ['body with two spellings of one key is indeterminate', 'container.create', 'body.HostConfig.Privileged: false', { body: { HostConfig: { Privileged: true, privileged: false } } }, 'deny'],
    ['body array index', 'container.create', 'body.Cmd.0: sh', { body: { Cmd: ['sh', '-c'] } }, 'allow'],
    ['body path through an array needs an index', 'container.create', 'body.Cmd.Name: sh', { body: { Cmd: ['sh'] } }, 'deny'],
    // in
    ['in: literal item', 'container.kill', 'query.signal: { in: [TERM, INT] }', { query: { signal: 'INT' } }, 'allow'],
    ['in: glob item', 'container.kill', 'query.signal: { in: [TERM, "SIG*"] }', { query: { signal: 'SIGHUP' } }, 'allow'],
    ['in: no item', 'container.kill', 'query.signal: { in: [TERM, "SIG*"] }', { query: { signal: 'KILL' } }, 'deny'],
    ['in: image globs stop at "/"', 'container.create', 'create.image: { in: ["registry.example.com/dev/*"] }', { facts: { 'create.image': 'registry.example.com/dev/team/app' } }, 'deny'],
    ['in: image glob', 'container.create', 'create.image: { in: ["busybox:*"] }', { facts: { 'create.image': 'busybox:1.36' } }, 'allow'],
    ['in: a bare name is not name:*', 'container.create', 'create.image: { in: ["busybox:*"] }', { facts: { 'create.image': 'busybox' } }, 'deny'],
    // subsetOf
    ['subsetOf: empty list holds', 'container.create', 'create.capAdd: { subsetOf: [NET_BIND_SERVICE] }', { facts: { 'create.capAdd': [] } }, 'allow'],
    ['subsetOf: all items in the set', 'container.create', 'create.capAdd: { subsetOf: [NET_BIND_SERVICE, CHOWN] }', { facts: { 'create.capAdd': ['CHOWN'] } }, 'allow'],
    ['subsetOf: one item outside', 'container.create', 'create.capAdd: { subsetOf: [NET_BIND_SERVICE] }', { facts: { 'create.capAdd': ['NET_BIND_SERVICE', 'SYS_ADMIN'] } }, 'deny'],
    ['subsetOf: a non-list value is indeterminate', 'container.create', 'create.capAdd: { subsetOf: [NET_BIND_SERVICE] }', { facts: { 'create.capAdd': 'NET_BIND_SERVICE' } }, 'deny'],
    // each / under
    ['each under: below the prefix', 'container.create', 'create.hostPaths: { each: { under: [/srv/data] } }', { facts: { 'create.hostPaths': ['/srv/data/app'] } }, 'allow'],
    ['each under: the prefix itself', 'container.create', 'create.hostPaths: { each: { under: [/srv/data] } }', { facts: { 'create.hostPaths': ['/srv/data'] } }, 'allow'],
    ['each under: a sibling with the same string prefix', 'container.create', 'create.hostPaths: { each: { under: [/srv/data] } }', { facts: { 'create.hostPaths': ['/srv/database'] } }, 'deny'],
    ['each under: /srv/data/../etc is not under /srv/data', 'container.create', 'create.hostPaths: { each: { under: [/srv/data] } }', { facts: { 'create.hostPaths': ['/srv/data/../etc'] } }, 'deny'],
    ['each under: // and /./ are cleaned', 'container.create', 'create.hostPaths: { each: { under: [/srv/data] } }', { facts: { 'create.hostPaths': ['/srv//data/./x'] } }, 'allow'],
    ['each under: a relative path is under nothing', 'container.create', 'create.hostPaths: { each: { under: [/srv/data] } }', { facts: { 'create.hostPaths': ['srv/data'] } }, 'deny'],
    ['each under: one bad item fails all', 'container.create', 'create.hostPaths: { each: { under: [/srv/data, /tmp] } }', { facts: { 'create.hostPaths': ['/tmp/x', '/etc'] } }, 'deny'],
    ['each: empty list holds', 'container.create', 'create.hostPaths: { each: { under: [/srv/data] } }', { facts: { 'create.hostPaths': [] } }, 'allow'],
    ['under: the root prefix covers everything', 'container.archive', 'query.path: { under: [/] }', { query: { path: '/etc/shadow' } }, 'allow'],
    // any
    ['any: one item matches', 'container.exec', 'exec.cmd: { any: { glob: "/bin/*sh" } }', { facts: { 'exec.cmd': ['/bin/bash', '-c'] } }, 'allow'],
    ['any: empty list fails', 'container.exec', 'exec.cmd: { any: { glob: "/bin/*sh" } }', { facts: { 'exec.cmd': [] } }, 'deny'],
    ['glob: "*" stays within one "/" segment', 'container.exec', 'exec.cmd: { any: { glob: "*sh" } }', { facts: { 'exec.cmd': ['/bin/bash'] } }, 'deny'],
    ['glob: "**" crosses segments', 'container.exec', 'exec.cmd: { any: { glob: "**/*sh" } }', { facts: { 'exec.cmd': ['/bin/bash'] } }, 'allow'],
    // glob
    ['glob: matches', 'container.create', 'create.image: { glob: "busybox:*" }', { facts: { 'create.image': 'busybox:latest' } }, 'allow'],
    ['glob: does not match another registry', 'container.create', 'create.image: { glob: "busybox:*" }', { facts: { 'create.image': 'evil.example.com/busybox:latest' } }, 'deny'],
    ['glob: braces', 'container.kill', 'query.signal: { glob: "{TERM,INT}" }', { query: { signal: 'INT' } }, 'allow'],
    // exists
    ['exists false: empty list', 'container.create', 'create.devices: { exists: false }', { facts: { 'create.devices': [] } }, 'allow'],
    ['exists false: a device', 'container.create', 'create.devices: { exists: false }', { facts: { 'create.devices': ['/dev/sda'] } }, 'deny'],
    ['exists true: a query parameter', 'container.delete', 'query.force: { exists: true }', { query: { force: '0' } }, 'allow'],
    ['exists true: an empty query parameter', 'container.delete', 'query.force: { exists: true }', { query: { force: '' } }, 'deny'],
    // lte / gte
    ['lte: below', 'container.create', 'create.memory: { lte: 100 }', { facts: { 'create.memory': 50 } }, 'allow'],
    ['lte: equal', 'container.create', 'create.memory: { lte: 100 }', { facts: { 'create.memory': 100 } }, 'allow'],
    ['lte: above', 'container.create', 'create.memory: { lte: 100 }', { facts: { 'create.memory': 101 } }, 'deny'],
    ['gte and lte in one map: inside', 'container.kill', 'query.t: { gte: 1, lte: 10 }', { query: { t: '5' } }, 'allow'],
    ['gte and lte in one map: outside', 'container.kill', 'query.t: { gte: 1, lte: 10 }', { query: { t: '11' } }, 'deny'],
    ['lte on an absent query parameter is indeterminate (not 0)', 'container.kill', 'query.t: { lte: 10 }', {}, 'deny'],
    ['lte on an absent body field uses the zero value 0', 'container.create', 'body.HostConfig.Memory: { lte: 10 }', { body: {} }, 'allow'],
    ['lte on a body string is indeterminate', 'container.create', 'body.HostConfig.Memory: { lte: 10 }', { body: { HostConfig: { Memory: '5' } } }, 'deny'],
    // not
    ['not: inner fails', 'container.create', 'create.image: { not: { glob: "evil/*" } }', { facts: { 'create.image': 'good/app' } }, 'allow'],
    ['not: inner holds', 'container.create', 'create.image: { not: { glob: "evil/*" } }', { facts: { 'create.image': 'evil/app' } }, 'deny'],
    ['not: does not turn indeterminate into holds', 'container.kill', 'query.t: { not: { lte: 10 } }', { query: { t: 'soon' } }, 'deny'],
  ];
  it.each(cases)('%s', (_name, act, when, input, effect) => {
    const policy = policyOf(`
rules:
  - name: r
    effect: allow
    subjects: ["*"]
    actions: [${act}]
    when:
      ${when}
`);
    expect(decide(policy, req(alice, act, input)).effect).toBe(effect);
  });
});

describe('${subject.*} substitution', () => {
  const policy = policyOf(`
rules:
  - name: owners-kill
    effect: allow
    subjects: ["*"]
    actions: [container.kill]
    when:
      target.owner: "\${subject.name}"
  - name: team-inspects
    effect: allow
    subjects: ["*"]
    actions: [container.inspect]
    when:
      target.team: { in: ["\${subject.groups}", admins] }
  - name: team-deletes
    effect: allow
    subjects: ["*"]
    actions: [container.delete]
    when:
      target.team: "\${subject.groups}"
`);
  const target = (t: Partial<TargetFacts>): TargetFacts => ({ kind: 'container', labels: {}, ...t });
  it.each([
    ['name: the owner', alice, 'container.kill', target({ owner: 'alice' }), 'allow'],
    ['name: not the owner', bob, 'container.kill', target({ owner: 'alice' }), 'deny'],
    ['name: an unowned object is nobody\'s', alice, 'container.kill', target({}), 'deny'],
    ['name: a caller without a name owns nothing', { user: '', groups: [], via: 'jwt' } as Identity, 'container.kill', target({}), 'deny'],
    ['groups in in: one of the caller\'s groups', carol, 'container.inspect', target({ team: 'dev' }), 'allow'],
    ['groups in in: a literal item next to the groups', bob, 'container.inspect', target({ team: 'admins' }), 'allow'],
    ['groups in in: another team', bob, 'container.inspect', target({ team: 'dev' }), 'deny'],
    ['groups as a scalar: one of the caller\'s groups', alice, 'container.delete', target({ team: 'dev' }), 'allow'],
    ['groups as a scalar: a caller without groups', { user: 'dave', groups: [], via: 'jwt' } as Identity, 'container.delete', target({ team: '' }), 'deny'],
  ])('%s', (_name, subject, act, t, effect) => {
    expect(decide(policy, req(subject, act, { target: t })).effect).toBe(effect);
  });

  it('shows the substituted value in the reason', () => {
    expect(decide(policy, req(bob, 'container.kill', { target: target({ owner: 'alice' }) })).reason).toBe(
      'rule owners-kill needs target.owner == "bob", request has "alice"',
    );
  });
});

describe('facts the input does not provide (fail closed)', () => {
  const policy = policyOf(`
rules:
  - name: safe-create
    effect: allow
    subjects: ["*"]
    actions: [container.create]
    when:
      create.privileged: false
  - { name: kill-any, effect: allow, subjects: ["*"], actions: [container.kill, container.export] }
  - name: only-owners-kill
    effect: deny
    subjects: ["*"]
    actions: [container.kill]
    when:
      target.owner: { not: "\${subject.name}" }
  - name: nobody-exports-prod
    effect: deny
    subjects: ["*"]
    actions: [container.export]
    when:
      target.labels.env: prod
`);
  it.each([
    ['allow rule, no facts at all', 'container.create', {}, 'deny', 'default-deny', 'rule safe-create needs create.privileged == false, but create.privileged is not available for this request'],
    ['allow rule, facts without the key', 'container.create', { facts: { 'create.image': 'x' } }, 'deny', 'default-deny', 'rule safe-create needs create.privileged == false, but create.privileged is not available for this request'],
    ['allow rule, the fact provided', 'container.create', { facts: { 'create.privileged': false } }, 'allow', 'safe-create', 'allowed by rule safe-create'],
    ['allow rule, the fact says privileged', 'container.create', { facts: { 'create.privileged': true } }, 'deny', 'default-deny', 'rule safe-create needs create.privileged == false, request has true'],
    ['deny rule, no target: denies', 'container.kill', {}, 'deny', 'only-owners-kill', 'target.owner != "alice", but target.owner is not available for this request'],
    ['deny rule, target owned by the caller: skips', 'container.kill', { target: { kind: 'container', owner: 'alice', labels: {} } }, 'allow', 'kill-any', 'allowed by rule kill-any'],
    ['deny rule, target owned by another: denies', 'container.kill', { target: { kind: 'container', owner: 'bob', labels: {} } }, 'deny', 'only-owners-kill', 'target.owner != "alice", request has "bob"'],
    ['deny on a label, no target: denies', 'container.export', {}, 'deny', 'nobody-exports-prod', 'target.labels.env == "prod", but target.labels.env is not available for this request'],
    ['deny on a label, target without the label: skips (zero value "")', 'container.export', { target: { kind: 'container', labels: {} } }, 'allow', 'kill-any', 'allowed by rule kill-any'],
    ['deny on a label, target labelled prod: denies', 'container.export', { target: { kind: 'container', labels: { env: 'prod' } } }, 'deny', 'nobody-exports-prod', 'target.labels.env == "prod", request has "prod"'],
  ] as const)('%s', (_name, act, extra, effect, rule, reason) => {
    expect(decide(policy, req(alice, act, extra as Partial<DecisionInput>))).toEqual({ effect, rule, reason });
  });
});

describe('hostile and malformed inputs', () => {
  it('reads only own properties: query.constructor is absent on an empty query', () => {
    const p = policyOf('rules:\n  - { name: r, effect: allow, subjects: ["*"], actions: [container.kill], when: { query.constructor: "" } }\n');
    expect(decide(p, req(alice, 'container.kill')).effect).toBe('allow');
  });

  it('reads only own properties: a label named toString is absent', () => {
    const p = policyOf('rules:\n  - { name: r, effect: deny, subjects: ["*"], actions: [container.kill], when: { target.labels.toString: { exists: true } } }\n  - { name: a, effect: allow, subjects: ["*"], actions: [container.kill] }\n');
    expect(decide(p, req(alice, 'container.kill', { target: { kind: 'container', labels: {} } })).effect).toBe('allow');
  });

  it.each([
    ['no subject', { action: 'system.ping', query: {} }],
    ['groups that are not a list', { subject: { user: 'x', groups: 5, via: 'jwt' }, action: 'system.ping', query: {} }],
    ['no query', { subject: alice, action: 'container.kill' }],
  ])('never throws, denies: %s', (_name, input) => {
    const p = policyOf('rules:\n  - { name: r, effect: allow, subjects: ["group:dev"], actions: [system.ping] }\n  - { name: q, effect: allow, subjects: ["*"], actions: [container.kill], when: { query.signal: TERM } }\n');
    const d = decide(p, input as unknown as DecisionInput);
    expect(d.effect).toBe('deny');
  });
});

describe('scale and accessors', () => {
  it('compiles and decides correctly with 1,000 rules', () => {
    const acts = ACTIONS.map((a) => a.name);
    const lines = ['rules:'];
    for (let i = 0; i < 1000; i++) {
      const act = acts[i % acts.length]!;
      if (i % 10 === 0) lines.push(`  - { name: deny-${i}, effect: deny, subjects: ["user:u${i}"], actions: [${act}] }`);
      else if (i % 3 === 0) lines.push(`  - { name: cond-${i}, effect: allow, subjects: ["group:c${i}"], actions: [${act}], when: { query.n: "${i}" } }`);
      else lines.push(`  - { name: allow-${i}, effect: allow, subjects: ["user:u${i}", "group:g${i % 50}"], actions: [${act}] }`);
    }
    const p = policyOf(lines.join('\n'));
    expect(ruleCount(p)).toBe(1000);
    const u = (user: string, groups: string[] = []): Identity => ({ user, groups, via: 'jwt' });
    expect(decide(p, req(u('u1'), acts[1]!)).rule).toBe('allow-1');
    expect(decide(p, req(u('u10'), acts[10 % acts.length]!))).toMatchObject({ effect: 'deny', rule: 'deny-10' });
    expect(decide(p, req(u('nobody', ['c3']), acts[3]!, { query: { n: '3' } })).rule).toBe('cond-3');
    expect(decide(p, req(u('nobody', ['c3']), acts[3]!, { query: { n: '4' } })).reason).toBe('rule cond-3 needs query.n == "3", request has "4"');
    // g2 is the group of allow-2 (action acts[2]) and of allow-52, -152...: any of them allows.
    expect(decide(p, req(u('nobody', ['g2']), acts[2]!)).rule).toBe('allow-2');
    expect(decide(p, req(u('nobody', ['zz']), acts[2]!)).rule).toBe('default-deny');
  });

  it('returns the same precomputed decision on the allow path', () => {
    const p = policyOf('rules:\n  - { name: r, effect: allow, subjects: ["*"], actions: [system.ping] }\n');
    expect(decide(p, req(alice, 'system.ping'))).toBe(decide(p, req(bob, 'system.ping')));
  });

  it('lists rule names, groups and what each action needs', () => {
    const p = policyOf(`
rules:
  - { name: a, effect: allow, subjects: ["group:dev", "user:x"], actions: [container.create], when: { create.privileged: false, body.Image: x } }
  - { name: b, effect: deny, subjects: ["group:ops"], actions: [container.kill], when: { target.owner: x } }
`);
    expect(policyRuleNames(p)).toEqual(['a', 'b']);
    expect(policyGroups(p)).toEqual(['dev', 'ops']);
    expect(factNeeds(p, 'container.create')).toEqual({ body: true, target: false, facts: true });
    expect(factNeeds(p, 'container.kill')).toEqual({ body: false, target: true, facts: false });
    expect(factNeeds(p, 'image.list')).toEqual({ body: false, target: false, facts: false });
  });
});

describe('list actions: target conditions deferred to the items', () => {
  const listPolicy = compilePolicy(
    [
      {
        file: 'lists.yaml',
        text: `rules:
  - name: teams-see-their-own
    effect: allow
    subjects: ["*"]
    actions: [container.list]
    when:
      target.team: "\${subject.groups}"
  - name: hide-prod
    effect: deny
    subjects: ["*"]
    actions: [container.list]
    when:
      target.labels.env: prod
`,
      },
    ],
    { actions: ACTIONS },
  ).policy!;
  const bob = { user: 'bob', groups: ['qa'], via: 'jwt' as const };
  const item = (team: string, env = '') => ({ kind: 'container' as const, labels: { 'dockward.team': team, env }, team, owner: '', name: 'x', image: 'i', id: '1' });

  it('allows the request when an allow rule could let items through, whatever the deny rules on targets', () => {
    expect(decide(listPolicy, { subject: bob, action: 'container.list', query: {}, deferTarget: true }).effect).toBe('allow');
  });
  it('without deferral the target conditions are indeterminate: fail closed', () => {
    expect(decide(listPolicy, { subject: bob, action: 'container.list', query: {} }).effect).toBe('deny');
  });
  it.each([
    ["the caller's team", item('qa'), 'allow'],
    ['another team', item('dev'), 'deny'],
    ['own team but prod', item('qa', 'prod'), 'deny'],
  ])('judges an item of %s on its own target', (_n, target, effect) => {
    expect(decide(listPolicy, { subject: bob, action: 'container.list', query: {}, target }).effect).toBe(effect);
  });
});

describe('a query parameter given more than once (dockerd reads some as lists)', () => {
  const policy = policyOf(`
rules:
  - name: read-under-srv
    effect: allow
    subjects: ["*"]
    actions: [container.archive]
    when:
      query.path: { glob: "/srv/*" }
  - { name: list-any, effect: allow, subjects: ["*"], actions: [image.list] }
  - name: no-all-images
    effect: deny
    subjects: ["*"]
    actions: [image.list]
    when:
      query.all: "1"
`);
  const twice = (...keys: string[]) => ({ queryRepeated: new Set(keys) });

  it('an allow rule reading it does not match: its first value is not all dockerd may act on', () => {
    const d = decide(policy, req(alice, 'container.archive', { query: { path: '/srv/a' }, ...twice('path') }));
    expect(d).toMatchObject({ effect: 'deny', rule: 'default-deny' });
    expect(d.reason).toContain('query.path is given more than once');
    expect(decide(policy, req(alice, 'container.archive', { query: { path: '/srv/a' } }))).toMatchObject({ effect: 'allow', rule: 'read-under-srv' });
  });

  it('a deny rule reading it matches, whatever the first value (the value index included)', () => {
    expect(decide(policy, req(alice, 'image.list', { query: { all: '0' }, ...twice('all') }))).toMatchObject({ effect: 'deny', rule: 'no-all-images' });
    expect(decide(policy, req(alice, 'image.list', { query: { all: '0' } }))).toMatchObject({ effect: 'allow', rule: 'list-any' });
  });

  it('a repeated parameter no rule reads changes nothing', () => {
    expect(decide(policy, req(alice, 'image.list', { query: { all: '0', digests: '1' }, ...twice('digests') }))).toMatchObject({ effect: 'allow', rule: 'list-any' });
  });
});
