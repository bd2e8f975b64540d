/**
 * The decision engine: a pure, total function of (policy, input). No I/O, no clock, never throws.
 * (decide.ts is the public face; explain.ts reuses the helpers here.)
 *
 * 1. Rules of the requested action that apply to the caller are found through the per-action,
 *    per-subject index built at load time.
 * 2. Any deny rule whose conditions hold denies. Otherwise any allow rule whose conditions hold
 *    allows. Otherwise default deny.
 * 3. A condition that cannot be evaluated (a fact the input does not provide, a value of the
 *    wrong type) is indeterminate. Fail closed: it never makes an allow rule match, and it
 *    never makes a deny rule skip.
 *
 * The allow path allocates nothing: the Decision of each allow rule is built at load time.
 * Inside a subject bucket, rules that test one key against plain strings are indexed by those
 * strings (compile.ts buildBucket), so a request with 1,000 rules tries only a handful. Reason
 * text is built only for the one rule a decision names, from text prepared at load time.
 */
import type { Decision, DecisionInput, Identity } from '../types.js';
import { DEFAULT_DENY_RULE } from './compile.js';
import { readSource, UNAVAILABLE, UNREADABLE } from './facts.js';
import { describeMatcher, renderValue } from './matchers.js';
import { FAIL, HOLD, UNKNOWN } from './types.js';
import type { ActionRules, CompiledCondition, CompiledPolicy, CompiledRule, Matcher, RuleBucket, SubjectIndex, Tri, ValueIndex } from './types.js';

export function decide(policy: CompiledPolicy, input: DecisionInput): Decision {
  try {
    return decideUnchecked(policy, input);
  } catch {
    // Only a malformed input (no subject, groups that are not a list) gets here.
    return { effect: 'deny', rule: DEFAULT_DENY_RULE, reason: 'the request could not be evaluated' };
  }
}

function decideUnchecked(policy: CompiledPolicy, input: DecisionInput): Decision {
  const rules = policy.byAction.get(input.action);
  if (rules === undefined) return noRuleDecision(input);
  const denyRule = firstMatch(rules.deny, input, true);
  if (denyRule !== undefined) return denyDecision(denyRule, input);
  const allowRule = firstMatch(rules.allow, input, false);
  if (allowRule !== undefined) return allowRule.allowDecision;
  return defaultDeny(rules, input);
}

/**
 * The matching rule with the lowest policy index among the rules that apply to the caller.
 * An anonymous caller is reached only by `anonymous` rules: `*` means any AUTHENTICATED caller,
 * and an anonymous identity's name or groups must not satisfy `user:` / `group:` subjects.
 */
function firstMatch(index: SubjectIndex, input: DecisionInput, isDeny: boolean): CompiledRule | undefined {
  if (!index.hasRules) return undefined;
  const subject = input.subject;
  if (subject.via === 'anonymous') return searchBucket(index.anonymous, input, isDeny, undefined);
  let best = searchBucket(index.anyAuthenticated, input, isDeny, undefined);
  if (index.byUser.size > 0) {
    const bucket = index.byUser.get(subject.user);
    if (bucket !== undefined) best = searchBucket(bucket, input, isDeny, best);
  }
  if (index.byGroup.size > 0) {
    for (const g of subject.groups) {
      const bucket = index.byGroup.get(g);
      if (bucket !== undefined) best = searchBucket(bucket, input, isDeny, best);
    }
  }
  return best;
}

/** `best`, or a matching rule of the bucket that comes before it in policy order. */
function searchBucket(bucket: RuleBucket, input: DecisionInput, isDeny: boolean, best: CompiledRule | undefined): CompiledRule | undefined {
  if (bucket.scan.length > 0) best = scan(bucket.scan, input, isDeny, best);
  const indexes = bucket.indexes;
  for (let i = 0; i < indexes.length; i++) {
    const ix = indexes[i]!;
    if (best !== undefined && ix.all[0]!.index >= best.index) continue;
    const candidates = candidatesOf(ix, input, isDeny);
    if (candidates !== undefined) best = scan(candidates, input, isDeny, best);
  }
  return best;
}

/** The rules of the index that may match this request (a superset; see ValueIndex). */
function candidatesOf(ix: ValueIndex, input: DecisionInput, isDeny: boolean): readonly CompiledRule[] | undefined {
  if (input.deferTarget === true && ix.condition.source.kind === 'target') return isDeny ? undefined : ix.all;
  const v = readSource(ix.condition.source, input);
  if (typeof v === 'string') return ix.byValue.get(v);
  if (v === undefined || v === null) return ix.byValue.get('');
  // Unreadable, or not a string: the condition cannot hold, but it is indeterminate (a list for
  // `in`, a missing fact), which lets every deny rule of the group through to its other conditions.
  return isDeny ? ix.all : undefined;
}

function scan(list: readonly CompiledRule[], input: DecisionInput, isDeny: boolean, best: CompiledRule | undefined): CompiledRule | undefined {
  for (let i = 0; i < list.length; i++) {
    const rule = list[i]!;
    if (best !== undefined && rule.index >= best.index) return best;
    if (conditionsHold(rule, input, isDeny)) return rule;
  }
  return best;
}

function conditionsHold(rule: CompiledRule, input: DecisionInput, isDeny: boolean): boolean {
  const conditions = rule.conditions;
  const deferred = input.deferTarget === true;
  for (let i = 0; i < conditions.length; i++) {
    // A list request: target conditions are judged per item of the answer. Here an allow rule
    // may still let some items through; a deny rule cannot deny the whole list for them.
    if (deferred && conditions[i]!.source.kind === 'target') {
      if (isDeny) return false;
      continue;
    }
    const t = conditions[i]!.test(input);
    if (t === FAIL) return false;
    if (t === UNKNOWN && !isDeny) return false;
  }
  return true;
}

export function evalCondition(c: CompiledCondition, input: DecisionInput): Tri {
  return c.test(input);
}

// ---------------------------------------------------------------------------------------------
// Reasons. Only the deny paths build text. The text follows `dockward: denied by rule <rule>: `
// on the client, so it does not repeat the rule name of a deny rule.

/** `user:alice`; a name with spaces, quotes or control characters is JSON-quoted so a reason stays one clean line. */
export function subjectLabel(subject: Identity): string {
  if (subject.via === 'anonymous') return 'anonymous';
  const name = String(subject.user);
  return /^[\x21-\x7e]+$/.test(name) && !name.includes('"') ? `user:${name}` : `user:${JSON.stringify(name)}`;
}

function noRuleDecision(input: DecisionInput): Decision {
  return { effect: 'deny', rule: DEFAULT_DENY_RULE, reason: `no rule allows ${input.action} for ${subjectLabel(input.subject)}` };
}

function denyDecision(rule: CompiledRule, input: DecisionInput): Decision {
  if (rule.conditions.length === 0) {
    return { effect: 'deny', rule: rule.name, reason: `${input.action} is denied to ${subjectLabel(input.subject)}` };
  }
  const parts = rule.conditions.map((c) => conditionText(c, input, evalCondition(c, input)));
  return { effect: 'deny', rule: rule.name, reason: parts.join('; ') };
}

/**
 * No rule matched. When an allow rule came close (its subject and action matched, a condition
 * did not hold), name it and its first condition that did not hold: that is what the caller
 * has to change.
 */
function defaultDeny(rules: ActionRules, input: DecisionInput): Decision {
  const close = closestAllow(rules.allow, input.subject);
  if (close === undefined) return noRuleDecision(input);
  for (const c of close.conditions) {
    const t = evalCondition(c, input);
    if (t !== HOLD) {
      return { effect: 'deny', rule: DEFAULT_DENY_RULE, reason: `rule ${close.name} needs ${conditionText(c, input, t)}` };
    }
  }
  return noRuleDecision(input);
}

/** The first allow rule (policy order) whose subject and action match the request. */
function closestAllow(index: SubjectIndex, subject: Identity): CompiledRule | undefined {
  if (subject.via === 'anonymous') return earlier(index.anonymous, undefined);
  let best = earlier(index.anyAuthenticated, undefined);
  best = earlier(index.byUser.get(subject.user), best);
  for (const g of subject.groups) best = earlier(index.byGroup.get(g), best);
  return best;
}

/** The first rule of the bucket if it comes before `best`, else `best`. */
function earlier(bucket: RuleBucket | undefined, best: CompiledRule | undefined): CompiledRule | undefined {
  const first = bucket?.rules[0];
  return first !== undefined && (best === undefined || first.index < best.index) ? first : best;
}

/**
 * `query.signal == "TERM", request has "KILL"`, or for an indeterminate condition
 * `create.privileged == false, but create.privileged is not available for this request`.
 */
export function conditionText(c: CompiledCondition, input: DecisionInput, result: Tri): string {
  const expected = c.expected ?? `${c.key} ${describeMatcher(c.matcher, input.subject)}`;
  const value = readSource(c.source, input);
  if (value === UNAVAILABLE) return `${expected}, but ${c.key} is not available for this request`;
  if (value === UNREADABLE && c.source.kind === 'query') return `${expected}, but ${c.key} is given more than once (dockerd reads some parameters as lists)`;
  if (value === UNREADABLE) return `${expected}, but ${c.key} cannot be read unambiguously from the request`;
  if (result === UNKNOWN) {
    if (usesSubjectName(c) && !input.subject.user) return `${expected}, but the caller has no name`;
    return `${expected}, request has ${renderActual(c, input, value)} (not comparable)`;
  }
  return `${expected}, request has ${renderActual(c, input, value)}`;
}

function renderActual(c: CompiledCondition, input: DecisionInput, value: unknown): string {
  // A query parameter reads as "" when absent (Go's Form.Get); say which of the two it was.
  if (c.source.kind === 'query' && !Object.prototype.hasOwnProperty.call(input.query, c.source.name)) return 'nothing';
  return renderValue(value);
}

function usesSubjectName(c: CompiledCondition): boolean {
  const walk = (m: Matcher): boolean => {
    switch (m.kind) {
      case 'eq':
        return m.value.kind === 'subject.name';
      case 'in':
      case 'subsetOf':
        return m.items.some((i) => i.kind === 'subject.name');
      case 'each':
      case 'any':
      case 'not':
        return walk(m.inner);
      case 'all':
        return m.parts.some(walk);
      default:
        return false;
    }
  };
  return walk(c.matcher);
}
