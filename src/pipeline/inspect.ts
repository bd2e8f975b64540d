/**
 * Stage 3: read what the policy may look at. Inspected (`json`) bodies are read whole, up to
 * `limits.inspectedBodyBytes` - larger ones get 413, never a skipped check - and forwarded as
 * the exact bytes that were read. Stream bodies (tar, imports) are never touched here.
 */
import { readDockerJson } from '../docker/json.js';
import { rejection } from '../errors.js';
import type { Stage } from './context.js';

export interface InspectDeps {
  inspectedBodyBytes: number;
}

// dockerd calls r.ParseForm(), which reads url-encoded bodies into the same r.Form as the
// query: a form body could set `force=1` where the policy only looked at the query string.
const FORM_TYPES = /^\s*(application\/x-www-form-urlencoded|multipart\/form-data)\b/i;

export function createInspect(deps: InspectDeps): Stage {
  return async (ctx) => {
    const ct = ctx.headers['content-type'];
    if (ct !== undefined && FORM_TYPES.test(ct)) {
      return rejection('bad_body', `form-encoded bodies are refused (Content-Type ${ct}): dockerd would read them as query parameters`);
    }
    const def = ctx.actionDef;
    if (!def || !ctx.bodySource.present) return undefined;
    if (def.body === 'none') {
      return rejection('body_not_allowed', `${def.name} takes no request body`);
    }
    if (def.body !== 'json') return undefined;
    const bytes = await ctx.bodySource.read(deps.inspectedBodyBytes);
    if (!Buffer.isBuffer(bytes)) return bytes;
    ctx.body = bytes;
    ctx.bytesIn = bytes.length;
    if (bytes.length === 0) return undefined;
    const r = readDockerJson(bytes.toString('utf8'));
    if (!r.ok) return rejection('bad_body', `cannot read the ${def.name} body exactly as dockerd would: ${r.reason}`);
    ctx.bodyJson = r.value;
    return undefined;
  };
}
