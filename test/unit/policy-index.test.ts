/**
 * The fast paths of the decision engine must decide exactly what the plain definitions do:
 * - each condition's compiled `test` agrees with readSource + evalMatcher;
 * - the value-glob test agrees with picomatch itself;
 * - the per-bucket value index finds the same rule as trying every rule in policy order
 *   (explain()'s trace evaluates every rule without the index).
 */
import fc from 'fast-check';
import picomatch from 'picomatch';
import { describe, expect, it } from 'vitest';
import { compilePolicy, GLOB_OPTIONS, globTest } from '../../src/policy/compile.js';
import { decide, explain } from '../../src/policy/decide.js';
import { formatPolicyError } from '../../src/policy/load.js';
import { evalConditionGeneric, jsonString } from '../../src/policy/matchers.js';
import type { CompiledCondition, CompiledPolicy } from '../../src/policy/types.js';
import type { ActionDef, BodyKind, DecisionInput, Identity, TargetKind } from '../../src/types.js';

function action(name: string, body: BodyKind, target?: TargetKind): ActionDef {
  return { name, operationId: name, method: 'POST', path: `/${name}`, body, ...(target ? { target } : {}) };
}
const ACTIONS: readonly ActionDef[] = [
  action('container.kill', 'none', 'container'),
  action('container.export', 'none', 'container'),
  action('container.create', 'json'),
];

function policyOf(yaml: string): CompiledPolicy {
  const r = compilePolicy([{ file: 'test.yaml', text: yaml }], { actions: ACTIONS });
  if (r.policy === undefined) throw new Error(r.errors.map(formatPolicyError).join('\n'));
  return r.policy;
}

const alice: Identity = { user: 'alice', groups: ['dev'], via: 'jwt' };

describe('compiled condition tests agree with readSource + evalMatcher', () => {
  // Each row: a condition key and a matcher, as written in a policy.
  const conditions: [name: string, act: string, key: string, matcher: string][] = [
    ['eq string', 'container.kill', 'target.labels.env', 'prod'],
    ['eq empty string', 'container.kill', 'target.labels.env', '""'],
    ['in strings', 'container.kill', 'target.labels.env', '{ in: [prod, secret] }'],
    ['in strings with ""', 'container.kill', 'target.labels.env', '{ in: [prod, ""] }'],
    ['in with a glob item', 'container.kill', 'target.labels.env', '{ in: [prod, "sec*"] }'],
    ['in with ${subject.groups}', 'container.kill', 'target.team', '{ in: ["${subject.groups}", admins] }'],
    ['glob', 'container.kill', 'target.image', '{ glob: "registry.example.com/*" }'],
    ['not eq', 'container.kill', 'target.labels.env', '{ not: prod }'],
    ['not in', 'container.kill', 'target.labels.env', '{ not: { in: [prod, ""] } }'],
    ['not glob', 'container.kill', 'target.image', '{ not: { glob: "evil/*" } }'],
    ['eq ${subject.name}', 'container.kill', 'target.owner', '"${subject.name}"'],
    ['not ${subject.name}', 'container.kill', 'target.owner', '{ not: "${subject.name}" }'],
    ['query eq string', 'container.kill', 'query.signal', 'TERM'],
    ['query in strings', 'container.kill', 'query.signal', '{ in: [TERM, INT, ""] }'],
    ['query eq bool', 'container.kill', 'query.force', 'true'],
    ['query eq number', 'container.kill', 'query.t', '10'],
    ['query glob', 'container.kill', 'query.signal', '{ glob: "SIG*" }'],
    ['query range', 'container.kill', 'query.t', '{ gte: 1, lte: 10 }'],
    ['body eq string', 'container.create', 'body.Image', 'busybox'],
    ['body in strings', 'container.create', 'body.Image', '{ in: [busybox, alpine] }'],
    ['body all with in', 'container.create', 'body.Image', '{ in: [busybox, alpine], exists: true }'],
    ['body glob', 'container.create', 'body.Image', '{ glob: "busybox:*" }'],
    ['body eq bool', 'container.create', 'body.HostConfig.Privileged', 'false'],
    ['body eq number', 'container.create', 'body.HostConfig.Privileged', '10'],
    ['body eq number zero', 'container.create', 'body.HostConfig.Privileged', '0'],
    ['body in globs only', 'container.create', 'body.Image', '{ in: ["busybox:*", "*"] }'],
    ['body subsetOf', 'container.create', 'body.Cmd', '{ subsetOf: [sh, "-c"] }'],
    ['body under', 'container.create', 'body.Image', '{ under: [/srv/data, /tmp] }'],
    ['query under the root', 'container.kill', 'query.signal', '{ under: [/] }'],
    ['fact each under', 'container.create', 'create.hostPaths', '{ each: { under: [/srv/data, "/odd dir/x"] } }'],
    ['fact any glob', 'container.create', 'create.hostPaths', '{ any: { glob: "/srv/*" } }'],
    ['fact each in', 'container.create', 'create.hostPaths', '{ each: { in: [/srv/data, "/tmp/*"] } }'],
    ['fact subsetOf', 'container.create', 'create.capAdd', '{ subsetOf: [NET_BIND_SERVICE, "SYS_*"] }'],
    ['fact eq string', 'container.create', 'create.image', 'busybox'],
    ['fact in globs', 'container.create', 'create.image', '{ in: ["busybox:*", alpine] }'],
  ];
  const values = fc.oneof(
    fc.constantFrom<unknown>(undefined, null, '', 'prod', 'secret', 'TERM', 'SIGHUP', 'busybox', 'busybox:1', 'alice', 'dev', 'admins', 'evil/x', '10', 'true', '0'),
    // Query spellings dockerd reads as numbers or booleans, and ones it does not.
    fc.constantFrom<unknown>('+010', '1e1', ' 10', '10.0', '0x0a', 'FALSE', ' no ', 'None', '\u00a0no'),
    fc.constantFrom<unknown>(true, false, 0, 10, ['prod'], [], ['sh'], { a: 1 }),
    fc.constantFrom<unknown>('/srv/data', '/srv/data/', '/srv/database', '/srv/data/../etc', '/srv//data', '/srv/./data/x', '/srv/data/.', '/srv/data/..x', '/srv/.data',
      'srv/data', '/', '//', '/..', '/../srv/data', '/tmp', '/tmp/a\n/', '/odd dir/x/y', ['/srv/data/x', '/etc'], ['/srv/data'], ['/tmp/z', 7], ['NET_BIND_SERVICE', 'SYS_ADMIN'], [null]),
    fc.string({ maxLength: 6 }),
  );
  const subjects = fc.constantFrom<Identity>(
    alice,
    { user: 'bob', groups: ['admins', 'ops'], via: 'mtls' },
    { user: '', groups: [], via: 'jwt' },
    { user: 'anonymous', groups: [], via: 'anonymous' },
  );

  it.each(conditions)('%s', (_name, act, key, matcher) => {
    const p = policyOf(`rules:\n  - { name: r, effect: allow, subjects: ["*"], actions: [${act}], when: { ${key}: ${matcher} } }\n`);
    const c: CompiledCondition = p.rules[0]!.conditions[0]!;
    fc.assert(
      fc.property(values, subjects, fc.boolean(), (value, subject, present) => {
        const input: DecisionInput = {
          subject,
          action: act,
          query: present && typeof value === 'string' ? { signal: value, force: value, t: value } : {},
          ...(present
            ? {
                target: { kind: 'container', owner: value, team: value, image: value, labels: { env: value } } as never,
                body: { Image: value, HostConfig: { Privileged: value }, Cmd: value },
                facts: { 'create.image': value, 'create.hostPaths': value, 'create.capAdd': value },
              }
            : {}),
        };
        expect(c.test(input)).toBe(evalConditionGeneric(c.source, c.matcher, input));
      }),
      { numRuns: 400 },
    );
  });
});

describe('reason text quotes strings as JSON.stringify does', () => {
  it.each([
    ['plain', 'prod-506'],
    ['empty', ''],
    ['a quote', 'a"b'],
    ['a backslash', 'a\\b'],
    ['a control character', 'a\nb'],
    ['DEL', 'a\u007fb'],
    ['non-ASCII', 'caf\u00e9'],
    ['a lone surrogate', 'x\ud800'],
  ])('%s', (_name, s) => {
    expect(jsonString(s)).toBe(JSON.stringify(s));
  });

  it('on any string', () => {
    fc.assert(fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme-ascii' })), (s) => jsonString(s) === JSON.stringify(s)), { numRuns: 2000 });
  });
});

describe('value globs agree with picomatch', () => {
  const patterns = ['busybox:*', 'registry.example.com/dev/*', '**/*sh', '{TERM,INT}', 'a[bc]d', 'a[b]', '*', '?', '!x', '.hidden*', 'x/**', 'a\\*b', '*.{js,ts}'];
  const chars = fc.constantFrom(...'ab/.:*?![]{},-_xsh\\'.split(''), 'busybox', 'registry.example.com', 'dev', 'TERM');
  const inputs = fc.array(chars, { maxLength: 8 }).map((parts) => parts.join(''));

  it.each(patterns)('%s', (pattern) => {
    const reference = picomatch(pattern, GLOB_OPTIONS);
    const fast = globTest(pattern);
    for (const s of ['', pattern, `${pattern}x`]) expect(fast(s)).toBe(reference(s));
    fc.assert(fc.property(inputs, (s) => fast(s) === reference(s)), { numRuns: 500 });
  });
});

/** The rule trying every rule in policy order would pick: first matching deny, else first matching allow. */
function referenceRule(p: CompiledPolicy, input: DecisionInput): string {
  const trace = explain(p, input).trace;
  return trace.find((t) => t.effect === 'deny' && t.matched)?.rule ?? trace.find((t) => t.effect === 'allow' && t.matched)?.rule ?? 'default-deny';
}

describe('the value index finds the rule a scan in policy order finds', () => {
  // Five filler deny rules on target.labels.env make the key indexed in the "*" bucket.
  const fillers = [1, 2, 3, 4, 5].map((i) => `  - { name: filler-${i}, effect: deny, subjects: ["*"], actions: [container.export], when: { target.labels.env: { in: ["f${i}", "g${i}"] } } }`);
  const policy = policyOf(
    [
      'rules:',
      ...fillers,
      '  - { name: no-prod, effect: deny, subjects: ["*"], actions: [container.export], when: { target.labels.env: { in: [prod, secret] } } }',
      '  - { name: no-unlabelled, effect: deny, subjects: ["*"], actions: [container.export], when: { target.labels.env: "", target.owner: bob } }',
      '  - { name: exports, effect: allow, subjects: ["*"], actions: [container.export] }',
    ].join('\n'),
  );
  const target = (labels: unknown, owner = 'alice') => ({ target: { kind: 'container', owner, labels } as never });
  it.each([
    ['a listed value denies', target({ env: 'prod' }), 'deny', 'no-prod', 'target.labels.env in ["prod", "secret"], request has "prod"'],
    ['the second listed value denies', target({ env: 'secret' }), 'deny', 'no-prod', 'target.labels.env in ["prod", "secret"], request has "secret"'],
    ['an unlisted value passes', target({ env: 'dev' }), 'allow', 'exports', 'allowed by rule exports'],
    ['no target: the first deny rule denies (fail closed)', {}, 'deny', 'filler-1', 'target.labels.env in ["f1", "g1"], but target.labels.env is not available for this request'],
    ['a list value is indeterminate for in: denies', target({ env: ['dev'] }), 'deny', 'filler-1', 'target.labels.env in ["f1", "g1"], request has ["dev"] (not comparable)'],
    ['an absent label reads as "": the "" rule applies', target({}, 'bob'), 'deny', 'no-unlabelled', 'target.labels.env == "", request has nothing; target.owner == "bob", request has "bob"'],
    ['an absent label, its other condition fails: passes', target({}, 'alice'), 'allow', 'exports', 'allowed by rule exports'],
    ['a number label equals no string: passes', target({ env: 7 }, 'bob'), 'allow', 'exports', 'allowed by rule exports'],
  ] as const)('%s', (_name, extra, effect, rule, reason) => {
    const input: DecisionInput = { subject: alice, action: 'container.export', query: {}, ...extra };
    expect(decide(policy, input)).toEqual({ effect, rule, reason });
    expect(referenceRule(policy, input)).toBe(rule);
  });

  it('an indexed allow rule never matches a value it cannot read', () => {
    const p = policyOf(
      ['rules:', ...[1, 2, 3, 4, 5].map((i) => `  - { name: team-${i}, effect: allow, subjects: ["*"], actions: [container.kill], when: { target.team: "t${i}" } }`)].join('\n'),
    );
    expect(decide(p, { subject: alice, action: 'container.kill', query: {}, ...target({}) }).rule).toBe('default-deny');
    expect(decide(p, { subject: alice, action: 'container.kill', query: {} }).reason).toBe('rule team-1 needs target.team == "t1", but target.team is not available for this request');
    expect(decide(p, { subject: alice, action: 'container.kill', query: {}, target: { kind: 'container', team: 't4', labels: {} } }).rule).toBe('team-4');
  });

  it('the earliest matching rule wins across indexed and scanned rules and subject buckets', () => {
    const p = policyOf(
      [
        'rules:',
        '  - { name: by-group, effect: deny, subjects: ["group:dev"], actions: [container.kill], when: { query.signal: { glob: "K*" } } }',
        ...[1, 2, 3, 4, 5].map((i) => `  - { name: by-star-${i}, effect: deny, subjects: ["*"], actions: [container.kill], when: { query.signal: { in: [KILL, "S${i}"] } } }`),
        '  - { name: by-user, effect: deny, subjects: ["user:alice"], actions: [container.kill], when: { query.signal: KILL } }',
        // Not indexable (a glob), in the same bucket as the indexed by-star rules, but later.
        '  - { name: late-glob, effect: deny, subjects: ["*"], actions: [container.kill], when: { query.signal: { glob: "K*" } } }',
      ].join('\n'),
    );
    const kill = (subject: Identity): DecisionInput => ({ subject, action: 'container.kill', query: { signal: 'KILL' } });
    expect(decide(p, kill(alice)).rule).toBe('by-group');
    expect(decide(p, kill({ user: 'alice', groups: [], via: 'jwt' })).rule).toBe('by-star-1');
    expect(decide(p, { ...kill(alice), query: { signal: 'S3' } }).rule).toBe('by-star-3');
    expect(decide(p, { ...kill({ user: 'carol', groups: [], via: 'jwt' }), query: { signal: 'KEEP' } }).rule).toBe('late-glob');
  });
});

describe('random policies: decide() names the rule a scan in policy order names', () => {
  const SUBJECTS = ['"*"', 'anonymous', '"user:a"', '"user:b"', '"group:g1"', '"group:g2"'];
  const WORDS = ['', 'prod', 'dev', 'x'];
  const matcher = fc.oneof(
    fc.constantFrom(...WORDS).map((w) => JSON.stringify(w)),
    fc.subarray(WORDS, { minLength: 1 }).map((ws) => `{ in: ${JSON.stringify(ws)} }`),
    fc.constantFrom('{ glob: "pr*" }', '{ not: prod }', '{ not: { in: [dev, ""] } }', '"${subject.name}"', '{ exists: true }', '{ in: [prod, "d*"] }'),
  );
  const condition = fc.tuple(fc.constantFrom('target.labels.env', 'target.owner', 'query.signal'), matcher);
  const rule = fc.record({
    effect: fc.constantFrom('allow', 'deny'),
    subjects: fc.subarray(SUBJECTS, { minLength: 1 }),
    actions: fc.subarray(['container.kill', 'container.export'], { minLength: 1 }),
    when: fc.uniqueArray(condition, { maxLength: 3, selector: (c) => c[0] }),
  });
  const rules = fc.array(rule, { maxLength: 30 });
  const word = fc.constantFrom<unknown>(...WORDS, 'a', 'b', undefined, 7, ['prod']);
  const input = fc.record({
    user: fc.constantFrom('a', 'b', 'c'),
    groups: fc.subarray(['g1', 'g2', 'g3']),
    via: fc.constantFrom('jwt', 'anonymous'),
    action: fc.constantFrom('container.kill', 'container.export'),
    signal: word,
    target: fc.option(fc.record({ owner: word, env: word }), { nil: undefined }),
  });

  it('agrees on thousands of policies and requests', () => {
    fc.assert(
      fc.property(rules, fc.array(input, { minLength: 1, maxLength: 8 }), (rs, inputs) => {
        const yaml = ['rules:'];
        rs.forEach((r, i) => {
          const when = r.when.length === 0 ? '' : `, when: { ${r.when.map(([k, m]) => `${k}: ${m}`).join(', ')} }`;
          yaml.push(`  - { name: r${i}, effect: ${r.effect}, subjects: [${r.subjects.join(', ')}], actions: [${r.actions.join(', ')}]${when} }`);
        });
        const p = policyOf(rs.length === 0 ? 'rules: []' : yaml.join('\n'));
        for (const i of inputs) {
          const d: DecisionInput = {
            subject: { user: i.user, groups: i.groups, via: i.via } as Identity,
            action: i.action,
            query: typeof i.signal === 'string' ? { signal: i.signal } : {},
            ...(i.target !== undefined
              ? { target: { kind: 'container', owner: i.target.owner, labels: i.target.env === undefined ? {} : { env: i.target.env } } as never }
              : {}),
          };
          expect(decide(p, d).rule).toBe(referenceRule(p, d));
        }
      }),
      { numRuns: 300 },
    );
  });
});
