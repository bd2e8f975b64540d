/** Stage 4: the policy decision. `decide` is pure; this stage only builds its input. */
import { rejection } from '../errors.js';
import { LIST_TARGET_ACTIONS } from '../policy/facts.js';
import type { DecisionInput, Decision, OwnershipLabels } from '../types.js';
import type { Stage } from './context.js';
import { factsOf } from './inspect.js';

export interface AuthorizeDeps {
  /** Decides with the policy in force now (reloads swap it; a request keeps the one it started with). */
  decide(input: DecisionInput): Decision;
  /** Whether a rule for the action reads `target.*` (then list answers are filtered item by item). */
  needsTarget?(action: string): boolean;
  ownership: OwnershipLabels;
}

export function createAuthorize(deps: AuthorizeDeps): Stage {
  return (ctx) => {
    const facts = factsOf(ctx);
    const action = ctx.classification!.action;
    const filtered = LIST_TARGET_ACTIONS.has(action) && deps.needsTarget?.(action) === true;
    const input: DecisionInput = {
      subject: ctx.identity!,
      action,
      query: ctx.request!.query,
      ...(ctx.request!.repeated !== undefined ? { queryRepeated: ctx.request!.repeated } : {}),
      body: ctx.bodyJson,
      // Absent when inspect derived none: fact conditions are then indeterminate (fail closed).
      ...(facts !== undefined ? { facts } : {}),
      // Absent when no rule for the action reads target.*, or the kind has no facts.
      ...(ctx.target !== undefined ? { target: ctx.target } : {}),
      ...(filtered ? { deferTarget: true } : {}),
    };
    // The decision is taken with the policy of this moment, and so is every item's.
    const decide = deps.decide;
    const decision = decide(input);
    ctx.decision = decision;
    if (decision.effect !== 'allow') return rejection('denied', `denied by rule ${decision.rule}: ${decision.reason}`);
    if (filtered) {
      const itemInput = { ...input, deferTarget: false };
      ctx.responseFilter = {
        keep: (item) => decide({ ...itemInput, target: item }).effect === 'allow',
        ownership: deps.ownership,
      };
    }
    return undefined;
  };
}
