import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../../src/policy/compile.js';
import { formatPolicyError } from '../../src/policy/load.js';
import type { ActionDef, BodyKind, TargetKind } from '../../src/types.js';

/** A small fixed catalogue, so these tests do not depend on the real one. */
function action(name: string, body: BodyKind, target?: TargetKind): ActionDef {
  return { name, operationId: name, method: 'POST', path: `/${name}`, body, ...(target ? { target } : {}) };
}
const ACTIONS: readonly ActionDef[] = [
  action('system.ping', 'none'),
  action('system.ping.head', 'none'),
  action('container.list', 'none'),
  action('container.inspect', 'none', 'container'),
  action('container.kill', 'none', 'container'),
  action('container.create', 'json'),
  action('container.exec', 'json', 'container'),
  action('container.update', 'json', 'container'),
  action('container.export', 'none', 'container'),
  action('image.list', 'none'),
  action('image.create', 'stream'),
];

function compile(...texts: string[]) {
  return compilePolicy(texts.map((text, i) => ({ file: `p${i + 1}.yaml`, text })), { actions: ACTIONS });
}

/** The errors as `file:line:col: message` lines. */
function errorsOf(...texts: string[]): string[] {
  return compile(...texts).errors.map(formatPolicyError);
}

const rule = (body: string): string => `rules:\n  - name: r1\n    effect: allow\n${body}`;
const ok = (extra = ''): string => rule(`    subjects: ["*"]\n    actions: [container.kill]\n${extra}`);

describe('compilePolicy: every kind of error, with its position', () => {
  it.each([
    ['YAML syntax error', 'rules:\n  - name: [unclosed\n', 'p1.yaml:3:1: YAML:'],
    ['duplicate YAML key', 'rules: []\nrules: []\n', 'p1.yaml:2:1: YAML: Map keys must be unique'],
    ['empty file', '# nothing here\n', 'p1.yaml:1:1: the file is empty'],
    ['top level is a list', '- name: r1\n', 'p1.yaml:1:1: expected a map with a "rules" list'],
    ['unknown top-level key', 'rules: []\npolicy: x\n', 'p1.yaml:2:1: unknown top-level key "policy"'],
    ['misspelt top-level key gets a suggestion', 'rule: []\n', 'p1.yaml:1:1: unknown top-level key "rule" (did you mean "rules"?)'],
    ['missing rules', 'version: 1\n', 'p1.yaml:1:1: missing "rules"'],
    ['rules not a list', 'rules: {}\n', 'p1.yaml:1:8: "rules" must be a list'],
    ['bad version', 'version: 2\nrules: []\n', 'p1.yaml:1:10: version must be 1'],
    ['rule is not a map', 'rules:\n  - just-a-string\n', 'p1.yaml:2:5: a rule must be a map'],
    ['rule without name', 'rules:\n  - effect: allow\n    subjects: ["*"]\n    actions: [system.ping]\n', 'p1.yaml:2:5: rule has no name'],
    ['rule name with spaces', 'rules:\n  - name: my rule\n    effect: allow\n    subjects: ["*"]\n    actions: [system.ping]\n', 'p1.yaml:2:11: rule name "my rule" may only use'],
    ['reserved rule name', 'rules:\n  - name: default-deny\n    effect: allow\n    subjects: ["*"]\n    actions: [system.ping]\n', 'p1.yaml:2:11: rule name "default-deny" is reserved'],
    ['unknown rule key', ok('    subject: ["*"]\n'), 'p1.yaml:6:5: unknown rule key "subject" (did you mean "subjects"?)'],
    ['missing effect', 'rules:\n  - name: r1\n    subjects: ["*"]\n    actions: [system.ping]\n', 'p1.yaml:2:5: rule has no effect'],
    ['effect not allow/deny', 'rules:\n  - name: r1\n    effect: permit\n    subjects: ["*"]\n    actions: [system.ping]\n', 'p1.yaml:3:13: effect must be allow or deny, not "permit"'],
    ['missing subjects', rule('    actions: [system.ping]\n'), 'p1.yaml:2:5: rule has no subjects'],
    ['empty subjects', rule('    subjects: []\n    actions: [system.ping]\n'), 'p1.yaml:4:15: subjects is empty'],
    ['subjects not a list', rule('    subjects: "*"\n    actions: [system.ping]\n'), 'p1.yaml:4:15: subjects must be a list'],
    ['subject without prefix', rule('    subjects: ["alice"]\n    actions: [system.ping]\n'), 'p1.yaml:4:16: bad subject "alice": expected "*", "anonymous", "user:<name>" or "group:<name>"'],
    ['subject with empty name', rule('    subjects: ["group:"]\n    actions: [system.ping]\n'), 'p1.yaml:4:16: bad subject "group:": the name is empty'],
    ['subject with a glob', rule('    subjects: ["user:a*"]\n    actions: [system.ping]\n'), 'p1.yaml:4:16: bad subject "user:a*": subject names are exact'],
    ['missing actions', rule('    subjects: ["*"]\n'), 'p1.yaml:2:5: rule has no actions'],
    ['empty actions', rule('    subjects: ["*"]\n    actions: []\n'), 'p1.yaml:5:14: actions is empty'],
    ['unknown action', rule('    subjects: ["*"]\n    actions: [container.kil]\n'), 'p1.yaml:5:15: unknown action "container.kil" (did you mean "container.kill"?)'],
    ['action glob matching nothing', rule('    subjects: ["*"]\n    actions: [volume.*]\n'), 'p1.yaml:5:15: action glob "volume.*" matches no known action'],
    ['unknown condition key family', ok('    when:\n      header.x: 1\n'), 'p1.yaml:7:7: unknown condition key "header.x"'],
    ['unknown create fact', ok('    when:\n      create.privilegd: false\n').replace('container.kill', 'container.create'), 'p1.yaml:7:7: unknown condition key "create.privilegd" (did you mean "create.privileged"?)'],
    ['unknown target key', ok('    when:\n      target.owners: x\n'), 'p1.yaml:7:7: unknown condition key "target.owners"'],
    ['create fact on container.kill', ok('    when:\n      create.privileged: false\n'), 'p1.yaml:7:7: condition key "create.privileged" does not exist for action container.kill: create.privileged exists only for container.create'],
    ['target key on container.create', ok('    when:\n      target.owner: bob\n').replace('container.kill', 'container.create'), 'p1.yaml:7:7: condition key "target.owner" does not exist for action container.create: target keys exist only for actions on an existing object'],
    ['body key on an action without JSON body', ok('    when:\n      body.Signal: x\n'), 'p1.yaml:7:7: condition key "body.Signal" does not exist for action container.kill: body keys exist only for actions with a JSON body'],
    ['exec fact on container.create', ok('    when:\n      exec.user: root\n').replace('container.kill', 'container.create'), 'p1.yaml:7:7: condition key "exec.user" does not exist for action container.create: exec facts exist only for container.exec'],
    ['key missing for an action a glob expands to', ok('    when:\n      target.owner: bob\n').replace('[container.kill]', '["container.*"]'), 'p1.yaml:7:7: condition key "target.owner" does not exist for action container.create (from "container.*")'],
    ['create fact that container.update lacks', ok('    when:\n      create.privileged: false\n').replace('container.kill', 'container.update'), 'p1.yaml:7:7: condition key "create.privileged" does not exist for action container.update'],
    ['empty when', ok('    when:\n'), 'p1.yaml:6:5: "when" is empty'],
    ['unknown matcher', ok('    when:\n      query.signal: { oneOf: [TERM] }\n'), 'p1.yaml:7:23: unknown matcher "oneOf"'],
    ['misspelt matcher gets a suggestion', ok('    when:\n      query.signal: { glb: "T*" }\n'), 'p1.yaml:7:23: unknown matcher "glb" (did you mean "glob"?)'],
    ['list as a matcher', ok('    when:\n      query.signal: [TERM, INT]\n'), 'p1.yaml:7:21: a list is not a matcher for query.signal'],
    ['in without a list', ok('    when:\n      query.signal: { in: TERM }\n'), 'p1.yaml:7:27: in needs a non-empty list'],
    ['lte without a number', ok('    when:\n      query.t: { lte: ten }\n'), 'p1.yaml:7:23: lte needs a number, not "ten"'],
    ['exists without a boolean', ok('    when:\n      query.t: { exists: yes }\n'), 'p1.yaml:7:26: exists needs true or false, not "yes"'],
    ['under with a relative path', ok('    when:\n      query.path: { under: [srv/data] }\n'), 'p1.yaml:7:29: under needs absolute paths, not "srv/data"'],
    ['empty glob', ok('    when:\n      query.path: { glob: "" }\n'), 'p1.yaml:7:27: glob needs a non-empty pattern string'],
    ['empty value', ok('    when:\n      query.signal:\n'), 'p1.yaml:7:7: missing value for query.signal'],
    ['partial substitution', ok('    when:\n      query.x: "team-${subject.name}"\n'), 'p1.yaml:7:16: bad substitution in "team-${subject.name}"'],
    ['unknown substitution', ok('    when:\n      query.x: "${subject.email}"\n'), 'p1.yaml:7:16: bad substitution'],
    ['plain value that looks like a glob', ok('    when:\n      query.signal: "T*"\n'), 'p1.yaml:7:21: "T*" looks like a glob, but a plain value matches exactly'],
    ['string literal for a boolean fact', ok('    when:\n      create.privileged: "false"\n').replace('container.kill', 'container.create'), 'p1.yaml:7:26: create.privileged is a boolean, so "false" can never match it'],
    ['scalar for a list fact', ok('    when:\n      create.capAdd: NET_ADMIN\n').replace('container.kill', 'container.create'), 'p1.yaml:7:22: create.capAdd is a list of strings: compare it with subsetOf, each, any or exists'],
    ['each on a scalar fact', ok('    when:\n      create.image: { each: { glob: "x*" } }\n').replace('container.kill', 'container.create'), 'p1.yaml:7:23: matcher "each" does not apply to create.image, which is a string'],
    ['lte on a boolean fact', ok('    when:\n      exec.privileged: { lte: 1 }\n').replace('container.kill', 'container.exec'), 'p1.yaml:7:26: matcher "lte" does not apply to exec.privileged, which is a boolean'],
    ['subsetOf on a query value', ok('    when:\n      query.signal: { subsetOf: [TERM] }\n'), 'p1.yaml:7:23: matcher "subsetOf" does not apply to query.signal'],
    ['error inside each', ok('    when:\n      create.hostPaths: { each: { under: [data] } }\n').replace('container.kill', 'container.create'), 'p1.yaml:7:43: under needs absolute paths, not "data"'],
  ])('%s', (_name, text, expected) => {
    const errors = errorsOf(text);
    expect(errors.some((e) => e.startsWith(expected)), `expected an error starting with\n  ${expected}\ngot\n  ${errors.join('\n  ')}`).toBe(true);
    expect(compile(text).policy).toBeUndefined();
  });

  it('reports a duplicate rule name across files, pointing at the first definition', () => {
    const a = 'rules:\n  - name: same\n    effect: allow\n    subjects: ["*"]\n    actions: [system.ping]\n';
    const b = 'rules:\n\n  - name: same\n    effect: deny\n    subjects: ["*"]\n    actions: [system.ping]\n';
    expect(errorsOf(a, b)).toEqual(['p2.yaml:3:11: duplicate rule name "same" (first defined at p1.yaml:2)']);
  });

  it('reports every error of every file at once', () => {
    const a = [
      'rules:',
      '  - name: a',
      '    effect: maybe', // 3
      '    subjects: ["who"]', // 4
      '    actions: [nope]', // 5
      '  - name: b',
      '    effect: allow',
      '    subjects: ["*"]',
      '    actions: [container.kill]',
      '    when:',
      '      create.privileged: false', // 11
      '      query.signal: { bogus: 1 }', // 12
      '',
    ].join('\n');
    const b = 'rules:\n  - name: [\n';
    const errors = errorsOf(a, b);
    expect(errors.map((e) => e.split(': ')[0])).toEqual([
      'p1.yaml:3:13',
      'p1.yaml:4:16',
      'p1.yaml:5:15',
      'p1.yaml:11:7',
      'p1.yaml:12:23',
      'p2.yaml:3:1',
    ]);
  });
});

describe('compilePolicy: what loads', () => {
  it.each([
    ['no rules at all', 'rules: []\n'],
    ['version 1', 'version: 1\nrules: []\n'],
    ['the unknown pseudo-action, named explicitly', rule('    subjects: ["*"]\n    actions: [unknown]\n')],
    ['query keys on unknown', rule('    subjects: ["*"]\n    actions: [unknown]\n    when:\n      query.x: "1"\n')],
    ['a glob over actions that all have the key', rule('    subjects: ["*"]\n    actions: ["container.k*", "container.e*"]\n    when:\n      target.owner: bob\n')],
    ['every subject form', rule('    subjects: ["*", anonymous, "user:alice", "group:dev", "user:CN=Alice Smith"]\n    actions: [system.ping]\n')],
    ['a description', rule('    description: ping for everyone\n    subjects: ["*"]\n    actions: [system.ping]\n')],
    ['several matchers in one map (all must hold)', ok('    when:\n      query.t: { gte: 1, lte: 10 }\n')],
    ['create facts on container.update where they exist', ok('    when:\n      create.memory: { lte: 1073741824 }\n').replace('container.kill', 'container.update')],
    ['labels with dots in the key', ok('    when:\n      target.labels.com.example.env: prod\n')],
    ['body path on a JSON action', ok('    when:\n      body.HostConfig.Privileged: false\n').replace('container.kill', 'container.create')],
    ['substitutions', ok('    when:\n      target.owner: { not: "${subject.name}" }\n      target.team: { in: ["${subject.groups}", ops] }\n')],
  ])('%s', (_name, text) => {
    const r = compile(text);
    expect(r.errors.map(formatPolicyError)).toEqual([]);
    expect(r.policy).toBeDefined();
  });

  it('resolves YAML aliases (a shared subject list)', () => {
    const text = [
      'rules:',
      '  - name: a',
      '    effect: allow',
      '    subjects: &devs ["group:dev", "user:alice"]',
      '    actions: [system.ping]',
      '  - name: b',
      '    effect: allow',
      '    subjects: *devs',
      '    actions: [container.list]',
      '',
    ].join('\n');
    const r = compile(text);
    expect(r.errors).toEqual([]);
    expect([...r.policy!.rules[1]!.subjects.groups]).toEqual(['dev']);
  });

  it('expands action globs against the catalogue, never to "unknown"', () => {
    const r = compile(rule('    subjects: ["*"]\n    actions: ["*"]\n'));
    const actions = r.policy!.rules[0]!.actions;
    expect(actions.size).toBe(ACTIONS.length);
    expect(actions.has('unknown')).toBe(false);
  });

  it('keeps rules in file order, then rule order, with their positions', () => {
    const a = 'rules:\n  - name: a1\n    effect: allow\n    subjects: ["*"]\n    actions: [system.ping]\n';
    const b = 'rules:\n  - name: b1\n    effect: deny\n    subjects: ["*"]\n    actions: [system.ping]\n  - name: b2\n    effect: allow\n    subjects: ["*"]\n    actions: [system.ping]\n';
    const p = compile(a, b).policy!;
    expect(p.rules.map((r) => `${r.name}@${r.file}:${r.line}`)).toEqual(['a1@p1.yaml:2', 'b1@p2.yaml:2', 'b2@p2.yaml:6']);
  });
});
