/** Stage 4: the policy decision. `decide` is pure; this stage only builds its input. */
import { rejection } from '../errors.js';
import type { DecisionInput, Decision } from '../types.js';
import type { Stage } from './context.js';
import { factsOf } from './inspect.js';

export interface AuthorizeDeps {
  /** Returns the policy in force now (reloads swap it; a request keeps the one it started with). */
  decide(input: DecisionInput): Decision;
}

export function createAuthorize(deps: AuthorizeDeps): Stage {
  return (ctx) => {
    const facts = factsOf(ctx);
    const input: DecisionInput = {
      subject: ctx.identity!,
      action: ctx.classification!.action,
      query: ctx.request!.query,
      body: ctx.bodyJson,
      // Absent when inspect derived none: fact conditions are then indeterminate (fail closed).
      ...(facts !== undefined ? { facts } : {}),
      // Absent when no rule for the action reads target.*, or the kind has no facts.
      ...(ctx.target !== undefined ? { target: ctx.target } : {}),
    };
    const decision = deps.decide(input);
    ctx.decision = decision;
    if (decision.effect === 'allow') return undefined;
    return rejection('denied', `denied by rule ${decision.rule}: ${decision.reason}`);
  };
}
