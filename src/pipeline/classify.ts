/** Stage 2: read the path as dockerd routes it and name the action. */
import { canonicalise } from '../docker/canonical.js';
import { classify } from '../docker/classify.js';
import { ACTIONS_BY_NAME } from '../docker/catalogue.js';
import { rejection } from '../errors.js';
import type { Stage } from './context.js';

export function createClassify(): Stage {
  return (ctx) => {
    const c = canonicalise(ctx.url);
    if (!c.ok) return rejection('bad_path', c.reason);
    ctx.request = c.request;
    const cls = classify(ctx.method, c.request.path);
    ctx.classification = cls;
    ctx.actionDef = ACTIONS_BY_NAME.get(cls.action);
    return undefined;
  };
}
