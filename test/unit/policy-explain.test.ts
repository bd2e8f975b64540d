import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../../src/policy/compile.js';
import { decide, explain, formatExplanation } from '../../src/policy/decide.js';
import { formatPolicyError } from '../../src/policy/load.js';
import type { CompiledPolicy } from '../../src/policy/types.js';
import type { ActionDef, BodyKind, DecisionInput, Identity, TargetKind } from '../../src/types.js';

function action(name: string, body: BodyKind, target?: TargetKind): ActionDef {
  return { name, operationId: name, method: 'POST', path: `/${name}`, body, ...(target ? { target } : {}) };
}
const ACTIONS: readonly ActionDef[] = [
  action('system.ping', 'none'),
  action('container.list', 'none'),
  action('container.kill', 'none', 'container'),
  action('container.create', 'json'),
];

const POLICY_TEXT = `rules:
  - name: everyone-pings
    effect: allow
    subjects: ["*"]
    actions: [system.ping]
  - name: dev-kills-gently
    effect: allow
    subjects: ["group:dev"]
    actions: [container.kill]
    when:
      query.signal: TERM
      query.t: { lte: 10 }
  - name: no-kill-for-bob
    effect: deny
    subjects: ["user:bob"]
    actions: [container.kill]
  - name: owners-only
    effect: deny
    subjects: ["*"]
    actions: [container.kill]
    when:
      target.owner: { not: "\${subject.name}" }
      query.signal: KILL
  - name: safe-create
    effect: allow
    subjects: ["*"]
    actions: [container.create]
    when:
      create.privileged: false
`;

function policy(): CompiledPolicy {
  const r = compilePolicy([{ file: 'p.yaml', text: POLICY_TEXT }], { actions: ACTIONS });
  if (r.policy === undefined) throw new Error(r.errors.map(formatPolicyError).join('\n'));
  return r.policy;
}

const alice: Identity = { user: 'alice', groups: ['dev'], via: 'jwt' };
const bob: Identity = { user: 'bob', groups: [], via: 'jwt' };

const inputs: [string, DecisionInput][] = [
  ['allowed ping', { subject: alice, action: 'system.ping', query: {} }],
  ['gentle kill', { subject: alice, action: 'container.kill', query: { signal: 'TERM', t: '5' }, target: { kind: 'container', owner: 'alice', labels: {} } }],
  ['hard kill without target facts', { subject: alice, action: 'container.kill', query: { signal: 'KILL' } }],
  ['bob kills', { subject: bob, action: 'container.kill', query: { signal: 'TERM' } }],
  ['create without facts', { subject: alice, action: 'container.create', query: {} }],
  ['unknown request', { subject: alice, action: 'unknown', query: {} }],
];

describe('explain', () => {
  it.each(inputs)('reports the same decision as decide(): %s', (_name, input) => {
    const p = policy();
    expect(explain(p, input).decision).toEqual(decide(p, input));
  });

  it('traces every rule in policy order, with why it matched or not', () => {
    const e = explain(policy(), { subject: alice, action: 'container.kill', query: { signal: 'TERM', t: '50' } });
    expect(e.trace.map((t) => [t.rule, t.matched, t.note])).toEqual([
      ['everyone-pings', false, 'action container.kill is not one of system.ping'],
      ['dev-kills-gently', false, 'does not match: a condition fails'],
      ['no-kill-for-bob', false, 'user:alice is not one of user:bob'],
      ['owners-only', false, 'does not match: a condition fails'],
      ['safe-create', false, 'action container.kill is not one of container.create'],
    ]);
    expect(e.trace[1]!.conditions).toEqual([
      { key: 'query.signal', line: 11, result: 'held', text: 'query.signal == "TERM", request has "TERM"' },
      { key: 'query.t', line: 12, result: 'failed', text: 'query.t <= 10, request has "50"' },
    ]);
    expect(e.trace[3]!.conditions.map((c) => c.result)).toEqual(['indeterminate', 'failed']);
  });

  it('marks the deciding rule and explains fail-closed matches', () => {
    const e = explain(policy(), { subject: alice, action: 'container.kill', query: { signal: 'KILL' } });
    expect(e.decision).toEqual({
      effect: 'deny',
      rule: 'owners-only',
      reason: 'target.owner != "alice", but target.owner is not available for this request; query.signal == "KILL", request has "KILL"',
    });
    const decisive = e.trace.filter((t) => t.decisive);
    expect(decisive.map((t) => t.rule)).toEqual(['owners-only']);
    expect(decisive[0]!.note).toBe('matches: conditions that cannot be evaluated count as holding for a deny rule (fail closed)');
  });

  it('says why an allow rule with an unavailable fact does not match', () => {
    const e = explain(policy(), { subject: alice, action: 'container.create', query: {} });
    const t = e.trace.find((r) => r.rule === 'safe-create')!;
    expect(t.matched).toBe(false);
    expect(t.note).toBe('does not match: an allow rule needs every condition to hold, and some cannot be evaluated');
    expect(t.conditions[0]!.result).toBe('indeterminate');
  });

  it('formats the explanation for the CLI', () => {
    const text = formatExplanation(explain(policy(), { subject: alice, action: 'container.kill', query: { signal: 'TERM', t: '50' } }));
    expect(text).toBe(
      [
        'query:    signal="TERM" t="50"',
        '',
        'rules tried:',
        '  everyone-pings (allow, p.yaml:2): does not match: action container.kill is not one of system.ping',
        '  dev-kills-gently (allow, p.yaml:6): does not match: a condition fails',
        '       held          query.signal == "TERM", request has "TERM"',
        '       failed        query.t <= 10, request has "50"',
        '  no-kill-for-bob (deny, p.yaml:13): does not match: user:alice is not one of user:bob',
        '  owners-only (deny, p.yaml:17): does not match: a condition fails',
        '       indeterminate target.owner != "alice", but target.owner is not available for this request',
        '       failed        query.signal == "KILL", request has "TERM"',
        '  safe-create (allow, p.yaml:24): does not match: action container.kill is not one of container.create',
        '',
        'decision: deny by rule default-deny: rule dev-kills-gently needs query.t <= 10, request has "50"',
      ].join('\n'),
    );
  });

  it('marks the allowing rule with =>', () => {
    const text = formatExplanation(explain(policy(), { subject: bob, action: 'system.ping', query: {} }));
    expect(text).toContain('  => everyone-pings (allow, p.yaml:2): matches: subject and action match');
    expect(text.endsWith('decision: allow by rule everyone-pings: allowed by rule everyone-pings')).toBe(true);
  });
});
