/**
 * `dockward policy explain`: the decision plus, for every rule in policy order, whether its
 * subject, action and each condition matched. Slow on purpose (evaluates everything); the
 * request path uses decide(). The decision it reports IS decide()'s, so the two cannot disagree.
 */
import type { Decision, DecisionInput } from '../types.js';
import { conditionText, decide, evalCondition, subjectLabel } from './evaluate.js';
import { renderValue } from './matchers.js';
import { HOLD, UNKNOWN } from './types.js';
import type { CompiledPolicy, CompiledRule } from './types.js';

export interface ConditionTrace {
  readonly key: string;
  readonly line: number;
  readonly result: 'held' | 'failed' | 'indeterminate';
  /** `query.signal == "TERM", request has "KILL"`. */
  readonly text: string;
}

export interface RuleTrace {
  readonly rule: string;
  readonly effect: 'allow' | 'deny';
  readonly file: string;
  readonly line: number;
  readonly subjectMatched: boolean;
  readonly actionMatched: boolean;
  /** Evaluated only when subject and action matched; empty otherwise. */
  readonly conditions: readonly ConditionTrace[];
  /** Subject, action and conditions all matched (indeterminate counts as holding for deny rules only). */
  readonly matched: boolean;
  /** This rule is the one the decision names. */
  readonly decisive: boolean;
  /** Why it matched or not, one line. */
  readonly note: string;
}

export interface Explanation {
  /** What was decided about, so the explanation prints on its own. */
  readonly input: DecisionInput;
  readonly decision: Decision;
  readonly trace: readonly RuleTrace[];
}

export function explain(policy: CompiledPolicy, input: DecisionInput): Explanation {
  const decision = decide(policy, input);
  const trace = policy.rules.map((rule) => traceRule(rule, input, decision));
  return { input, decision, trace };
}

function subjectMatches(rule: CompiledRule, input: DecisionInput): boolean {
  const s = rule.subjects;
  const subject = input.subject;
  if (subject.via === 'anonymous') return s.anonymous;
  return s.anyAuthenticated || s.users.has(subject.user) || subject.groups.some((g) => s.groups.has(g));
}

const MAX_LISTED = 6;

function listed(items: readonly string[]): string {
  return items.length <= MAX_LISTED ? items.join(', ') : `${items.slice(0, MAX_LISTED).join(', ')}, ... (${items.length} in all)`;
}

function traceRule(rule: CompiledRule, input: DecisionInput, decision: Decision): RuleTrace {
  const base = { rule: rule.name, effect: rule.effect, file: rule.file, line: rule.line, decisive: decision.rule === rule.name };
  const subjectMatched = subjectMatches(rule, input);
  const actionMatched = rule.actions.has(input.action);
  if (!subjectMatched || !actionMatched) {
    const note = !actionMatched
      ? `action ${input.action} is not one of ${listed(rule.actionPatterns)}`
      : `${subjectLabel(input.subject)} is not one of ${listed(rule.subjects.text)}`;
    return { ...base, subjectMatched, actionMatched, conditions: [], matched: false, note };
  }
  const conditions: ConditionTrace[] = rule.conditions.map((c) => {
    const t = evalCondition(c, input);
    return {
      key: c.key,
      line: c.line,
      result: t === HOLD ? 'held' : t === UNKNOWN ? 'indeterminate' : 'failed',
      text: conditionText(c, input, t),
    };
  });
  const failed = conditions.filter((c) => c.result === 'failed').length;
  const unknown = conditions.filter((c) => c.result === 'indeterminate').length;
  let matched: boolean;
  let note: string;
  if (failed > 0) {
    matched = false;
    note = `does not match: ${failed === 1 ? 'a condition fails' : `${failed} conditions fail`}`;
  } else if (unknown > 0 && rule.effect === 'allow') {
    matched = false;
    note = 'does not match: an allow rule needs every condition to hold, and some cannot be evaluated';
  } else if (unknown > 0) {
    matched = true;
    note = 'matches: conditions that cannot be evaluated count as holding for a deny rule (fail closed)';
  } else {
    matched = true;
    note = rule.conditions.length === 0 ? 'matches: subject and action match' : 'matches: every condition holds';
  }
  return { ...base, subjectMatched, actionMatched, conditions, matched, note };
}

/**
 * The text `dockward policy explain` prints after the request line (the CLI prints the
 * subject and action itself): the inputs rules read, each rule tried, the decision and why.
 */
export function formatExplanation(explanation: Explanation): string {
  const input = explanation.input;
  const out: string[] = [];
  const query = Object.entries(input.query);
  if (query.length > 0) out.push(`query:    ${query.map(([k, v]) => `${k}=${renderValue(v)}`).join(' ')}`);
  if (input.body !== undefined) out.push(`body:     ${renderValue(input.body)}`);
  if (input.facts !== undefined) {
    for (const [k, v] of Object.entries(input.facts)) out.push(`fact:     ${k} = ${renderValue(v)}`);
  }
  if (input.target !== undefined) out.push(`target:   ${renderValue(input.target)}`);
  if (out.length > 0) out.push('');
  out.push(explanation.trace.length === 0 ? 'rules tried: none (the policy has no rules)' : 'rules tried:');
  for (const t of explanation.trace) {
    out.push(`  ${t.decisive ? '=> ' : ''}${t.rule} (${t.effect}, ${t.file}:${t.line}): ${t.matched || t.conditions.length > 0 ? t.note : `does not match: ${t.note}`}`);
    for (const c of t.conditions) out.push(`       ${c.result.padEnd(13)} ${c.text}`);
  }
  out.push('');
  const d = explanation.decision;
  out.push(`decision: ${d.effect} by rule ${d.rule}: ${d.reason}`);
  return out.join('\n');
}
