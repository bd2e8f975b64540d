/**
 * After an allow decision on a create (issue 4): stamp the caller's identity into the owner
 * and team labels, overwriting whatever the client sent for those two keys - a spoofed
 * `dockward.owner=bob` must not grant bob anything. The body forwarded is the body the policy
 * checked plus exactly these labels.
 */
import { versionedPath } from '../docker/canonical.js';
import { goFoldKey, setTopLevelMember } from '../docker/json.js';
import { rejection } from '../errors.js';
import type { OwnershipLabels } from '../types.js';
import type { Stage } from './context.js';


/** Actions whose JSON body carries the created object's `Labels` at the top level. */
const BODY_LABELS = new Set(['container.create', 'volume.create', 'network.create', 'image.commit']);
const LABELS = goFoldKey('Labels');

export function createStamp(cfg: OwnershipLabels): Stage {
  return (ctx) => {
    const action = ctx.classification?.action;
    if (action === 'image.build') return stampBuildQuery(ctx, cfg);
    if (action === undefined || !BODY_LABELS.has(action)) return undefined;
    const body = ctx.bodyJson ?? {};
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      return rejection('bad_body', `${action} body must be a JSON object to record its owner`);
    }
    const doc = body as Record<string, unknown>;
    // dockerd matches `labels`, `LABELS`, ... to the same field: reuse the client's spelling.
    const key = Object.keys(doc).find((k) => goFoldKey(k) === LABELS) ?? 'Labels';
    const current = doc[key] ?? {};
    if (typeof current !== 'object' || current === null || Array.isArray(current)) {
      return rejection('bad_body', `${action} ${key} must be an object of strings`);
    }
    const stamped = withOwnership(current as Record<string, unknown>, ctx.identity!, cfg);
    // Only the labels value changes; every other byte is the one the policy read.
    const text = ctx.body && ctx.body.length > 0 ? ctx.body.toString('utf8') : '{}';
    ctx.body = Buffer.from(setTopLevelMember(text, key, JSON.stringify(stamped)), 'utf8');
    ctx.bodyJson = { ...doc, [key]: stamped };
    return undefined;
  };
}

function withOwnership(labels: Record<string, unknown>, who: { user: string; groups: readonly string[] }, cfg: OwnershipLabels): Record<string, unknown> {
  // Go map keys are exact: only these two spellings are the ownership labels.
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(labels)) if (k !== cfg.ownerLabel && k !== cfg.teamLabel) out[k] = v;
  out[cfg.ownerLabel] = who.user;
  // The team is the caller's first group; a caller without groups owns the object alone.
  if (who.groups[0] !== undefined) out[cfg.teamLabel] = who.groups[0];
  return out;
}

/** `POST /build?labels=<json>`: dockerd reads the first `labels` value. */
function stampBuildQuery(ctx: Parameters<Stage>[0], cfg: OwnershipLabels) {
  const req = ctx.request!;
  let labels: Record<string, unknown> = {};
  const given = req.query.labels;
  if (given !== undefined && given !== '') {
    try {
      const v = JSON.parse(given) as unknown;
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
      labels = v as Record<string, unknown>;
    } catch {
      return rejection('bad_body', 'image.build labels must be a JSON object of strings');
    }
  }
  const stamped = withOwnership(labels, ctx.identity!, cfg);
  const params = new URLSearchParams(req.rawQuery);
  params.delete('labels');
  params.append('labels', JSON.stringify(stamped));
  ctx.forwardUrl = `${versionedPath(req, req.path)}?${params.toString()}`;
  return undefined;
}
