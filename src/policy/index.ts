/** The policy engine's public surface: load (I/O), compile (pure), decide (pure, total), explain. */
export { loadPolicyFiles, formatPolicyError } from './load.js';
export type { LoadOptions, LoadResult } from './load.js';
export { compilePolicy, DEFAULT_DENY_RULE } from './compile.js';
export type { CompileOptions, CompileResult, PolicySource } from './compile.js';
export { decide, explain, factNeeds, formatExplanation, policyGroups, policyRuleNames, ruleCount } from './decide.js';
export type { ConditionTrace, Explanation, RuleTrace } from './explain.js';
export type { CompiledPolicy, FactNeeds, PolicyError } from './types.js';
