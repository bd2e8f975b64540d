/**
 * The public face of the decision engine (pure, no I/O): decide() for the request path,
 * explain() / formatExplanation() for `dockward policy explain`, and the small accessors the
 * pipeline and metrics use. The engine itself is in evaluate.ts, the trace in explain.ts.
 */
import type { CompiledPolicy, FactNeeds } from './types.js';

export { decide } from './evaluate.js';
export { explain, formatExplanation } from './explain.js';
export type { ConditionTrace, Explanation, RuleTrace } from './explain.js';

/** Rule names in policy order: the bounded label set of `denials_total{rule}` (plus `default-deny`). */
export function policyRuleNames(policy: CompiledPolicy): string[] {
  return policy.rules.map((r) => r.name);
}

/** For the `policy_rules` gauge. */
export function ruleCount(policy: CompiledPolicy): number {
  return policy.rules.length;
}

/** Groups named by `group:` subjects: the bounded set a metrics label may use for groups. */
export function policyGroups(policy: CompiledPolicy): string[] {
  const groups = new Set<string>();
  for (const r of policy.rules) for (const g of r.subjects.groups) groups.add(g);
  return [...groups].sort();
}

const NO_NEEDS: FactNeeds = Object.freeze({ body: false, target: false, facts: false });

/**
 * Which inputs the rules of `action` read. The pipeline may skip inspecting a target nobody
 * asks about; it must provide what is asked for, or those conditions stay indeterminate.
 */
export function factNeeds(policy: CompiledPolicy, action: string): FactNeeds {
  return policy.byAction.get(action)?.needs ?? NO_NEEDS;
}
