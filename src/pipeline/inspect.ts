/**
 * Stage 3: read what the policy may look at. Inspected (`json`) bodies are read whole, up to
 * `limits.inspectedBodyBytes` - larger ones get 413, never a skipped check - read as Go's
 * encoding/json reads them (docker/json.ts), and forwarded as the exact bytes that were read.
 * Stream bodies (tar, imports) are never touched here.
 *
 * Then the `create.*` / `exec.*` facts (docker/facts.ts), only for actions whose rules read
 * them: a ping or a `logs -f` never pays for them. A body whose facts cannot be read the way
 * dockerd reads it is refused (400) rather than guessed at.
 */
import { deriveFacts, FACT_ACTIONS, legacyStartBodyIsRead, type Facts } from '../docker/facts.js';
import { readDockerJson } from '../docker/json.js';
import { rejection } from '../errors.js';
import type { FactNeeds } from '../policy/types.js';
import type { RequestContext, Stage } from './context.js';

export interface InspectDeps {
  inspectedBodyBytes: number;
  /**
   * Which inputs the rules of an action read, in the policy in force (policy `factNeeds`).
   * Absent: facts are derived for every action that has them (correct, only slower), and a
   * legacy `container.start` body is refused (nothing is known to inspect it).
   */
  factNeeds?: (action: string) => FactNeeds;
}

// dockerd calls r.ParseForm(), which reads url-encoded bodies into the same r.Form as the
// query: a form body could set `force=1` where the policy only looked at the query string.
const FORM_TYPES = /^\s*(application\/x-www-form-urlencoded|multipart\/form-data)\b/i;

/**
 * The facts derived for a request, for the authorize stage. Kept beside the context rather
 * than on it so that this stage owns what it writes; undefined when none were derived.
 */
const derived = new WeakMap<RequestContext, Facts>();
export function factsOf(ctx: RequestContext): Facts | undefined {
  return derived.get(ctx);
}

const EMPTY = Buffer.alloc(0);

export function createInspect(deps: InspectDeps): Stage {
  const needsFacts = (action: string): boolean => deps.factNeeds === undefined || deps.factNeeds(action).facts;
  return async (ctx) => {
    const ct = ctx.headers['content-type'];
    if (ct !== undefined && FORM_TYPES.test(ct)) {
      return rejection('bad_body', `form-encoded bodies are refused (Content-Type ${ct}): dockerd would read them as query parameters`);
    }
    const def = ctx.actionDef;
    if (!def) return undefined;
    if (ctx.bodySource.present) {
      if (def.body === 'none') {
        // dockerd never reads a body here, but clients send one anyway (dockerode repeats a
        // POST's options as JSON). Read it within the limit and forward nothing in its place:
        // no unread bytes can reach the daemon.
        const dropped = await ctx.bodySource.read(deps.inspectedBodyBytes);
        if (!Buffer.isBuffer(dropped)) return dropped;
        ctx.body = EMPTY;
        ctx.bytesIn = dropped.length;
        return undefined;
      }
      if (def.body !== 'json') return undefined;
      const bytes = await ctx.bodySource.read(deps.inspectedBodyBytes);
      if (!Buffer.isBuffer(bytes)) return bytes;
      ctx.body = bytes;
      ctx.bytesIn = bytes.length;
      if (bytes.length > 0) {
        const r = readDockerJson(bytes);
        if (!r.ok) return rejection('bad_body', `cannot read the ${def.name} body exactly as dockerd would: ${r.reason}`);
        ctx.bodyJson = r.value;
      }
    }
    if (!FACT_ACTIONS.has(def.name)) return undefined;

    let body = ctx.bodyJson;
    if (def.name === 'container.start') {
      // Below API 1.24 dockerd reads a start body as a HostConfig that REPLACES the
      // container's (privileged, binds, ...): a policy written for container.create would be
      // bypassed unless some rule on container.start inspects it.
      const read = legacyStartBodyIsRead(ctx.request?.apiVersion, ctx.body?.length ?? 0);
      if (read && (deps.factNeeds === undefined || !deps.factNeeds(def.name).facts)) {
        return rejection('bad_body', `a container.start body (API ${ctx.request?.apiVersion}) replaces the container's host configuration; refused because no policy rule on container.start inspects create.* facts`);
      }
      if (!read) body = undefined;
    }
    if (!needsFacts(def.name)) return undefined;
    const facts = deriveFacts({ action: def.name, body, apiVersion: ctx.request?.apiVersion });
    if (facts === undefined) return undefined;
    if (!facts.ok) return rejection('bad_body', `cannot read the ${def.name} body exactly as dockerd would: ${facts.reason}`);
    derived.set(ctx, facts.facts);
    return undefined;
  };
}
