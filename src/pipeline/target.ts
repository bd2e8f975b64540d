/**
 * Stage between inspect and authorize (issue 4): read the existing object the request acts on
 * from the daemon, so `target.*` conditions judge the object dockerd will act on. Only done
 * when a rule for the action reads `target.*`: other requests pay nothing.
 *
 * A container named by name or id prefix is then pinned: the request is forwarded with the
 * full id that was judged, so a container removed and recreated under the same name between
 * the decision and the daemon's work cannot be acted on under the old decision.
 */
import { versionedPath } from '../docker/canonical.js';
import { rejection } from '../errors.js';
import type { TargetResolver } from '../docker/resolve.js';
import type { Stage } from './context.js';

export interface TargetDeps {
  resolver: TargetResolver;
  /** Whether any rule for this action reads `target.*` (policy `factNeeds`). */
  needsTarget(action: string): boolean;
}

export function createResolveTarget(deps: TargetDeps): Stage {
  return (ctx) => {
    const def = ctx.actionDef;
    if (!def?.target || !deps.needsTarget(def.name)) return undefined;
    const params = ctx.classification!.params;
    const ref = params.id ?? params.name;
    if (ref === undefined) return undefined;
    return deps.resolver.resolve(def.target, ref).then((r) => {
      switch (r.status) {
        case 'found': {
          ctx.target = r.target;
          if (def.target === 'container' && r.target.id && def.path.includes('{id}')) {
            const req = ctx.request!;
            const pinned = def.path.replace('{id}', r.target.id);
            ctx.forwardUrl = `${versionedPath(req, pinned)}${req.rawQuery ? `?${req.rawQuery}` : ''}`;
          }
          return undefined;
        }
        case 'missing': {
          let message = `no such ${def.target}: ${ref}`;
          try {
            const m = (JSON.parse(r.body.toString('utf8')) as { message?: unknown }).message;
            if (typeof m === 'string') message = m;
          } catch {
            // keep the generic text
          }
          return { ...rejection('not_found', message), fromDaemon: true };
        }
        case 'unsupported':
          // No target facts for this kind: target.* conditions stay indeterminate (fail closed).
          return undefined;
        case 'error':
          return rejection('upstream_unavailable', `cannot read the ${def.target} ${ref} from the daemon (${r.message})`);
      }
    });
  };
}
