/**
 * Target conditions on list actions filter what the caller sees (issue 4): `docker ps -a` by a
 * caller of team dev lists only dev's containers, `docker events` shows only their events.
 * Lists are finite JSON documents and are filtered whole; events are a JSON stream and are
 * filtered object by object, in constant memory.
 */
import { StringDecoder } from 'node:string_decoder';
import { Transform, type TransformCallback } from 'node:stream';
import { labelMap, targetFacts } from '../docker/resolve.js';
import { rejection } from '../errors.js';
import type { OwnershipLabels, Rejection, TargetFacts, TargetKind } from '../types.js';

/** Decides whether the caller may see one item. */
export type ItemFilter = (item: TargetFacts) => boolean;

export const LIST_KINDS: Readonly<Record<string, TargetKind>> = {
  'container.list': 'container',
  'image.list': 'image',
  'volume.list': 'volume',
  'network.list': 'network',
};

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/** The facts of one list item, read like resolve.ts reads the inspected object. */
export function itemFacts(kind: TargetKind, item: Record<string, unknown>, own: OwnershipLabels): TargetFacts {
  switch (kind) {
    case 'container': {
      const names = Array.isArray(item.Names) ? item.Names : [];
      return targetFacts(kind, str(item.Id), str(names[0]).replace(/^\//, ''), str(item.Image), labelMap(item.Labels), own);
    }
    case 'image': {
      const tags = Array.isArray(item.RepoTags) ? item.RepoTags : [];
      return targetFacts(kind, str(item.Id), str(tags[0]), str(tags[0]), labelMap(item.Labels), own);
    }
    case 'volume':
      return targetFacts(kind, str(item.Name), str(item.Name), '', labelMap(item.Labels), own);
    default:
      return targetFacts(kind, str(item.Id), str(item.Name), '', labelMap(item.Labels), own);
  }
}

/**
 * Filters a list answer. Returns the new body, or undefined when the answer is not the shape
 * the daemon documents (the caller then refuses to relay it: never pass an unfiltered list).
 */
export function filterListBody(action: string, body: Buffer, keep: ItemFilter, own: OwnershipLabels): Buffer | undefined {
  const kind = LIST_KINDS[action];
  if (!kind) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  const pick = (items: unknown): unknown[] | undefined =>
    Array.isArray(items) ? items.filter((it) => it !== null && typeof it === 'object' && keep(itemFacts(kind, it as Record<string, unknown>, own))) : undefined;
  if (kind === 'volume') {
    // `{"Volumes": [...], "Warnings": [...]}`; Volumes may be null when there are none.
    if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return undefined;
    const d = doc as Record<string, unknown>;
    const kept = d.Volumes === null ? [] : pick(d.Volumes);
    if (!kept) return undefined;
    return Buffer.from(JSON.stringify({ ...d, Volumes: kept }));
  }
  const kept = pick(doc);
  return kept ? Buffer.from(JSON.stringify(kept)) : undefined;
}

/** Largest list answer the gateway will filter; a bigger one is refused rather than passed on unfiltered. */
export const MAX_FILTERED_LIST_BYTES = 64 * 1024 * 1024;

export interface ListCollector {
  /** Takes the next piece of the answer; a Rejection once it has grown past the bound. */
  push(piece: Buffer): Rejection | undefined;
  /** The whole answer, filtered; a Rejection when it is not a list the gateway can read. */
  finish(): Buffer | Rejection;
}

/** Collects a list answer whole (lists are finite), then filters it for the caller. */
export function collectList(action: string, keep: ItemFilter, own: OwnershipLabels): ListCollector {
  const pieces: Buffer[] = [];
  let size = 0;
  return {
    push(piece) {
      size += piece.length;
      if (size > MAX_FILTERED_LIST_BYTES) return rejection('bad_answer', 'the list is too large to filter');
      pieces.push(piece);
      return undefined;
    },
    finish() {
      return filterListBody(action, Buffer.concat(pieces, size), keep, own) ?? rejection('bad_answer', 'cannot read the list the daemon answered, so it cannot be filtered');
    },
  };
}

const EVENT_KINDS: Readonly<Record<string, TargetKind>> = { container: 'container', image: 'image', volume: 'volume', network: 'network' };

/** The facts of one event's actor: container events carry the container's labels as attributes. */
export function eventFacts(ev: Record<string, unknown>, own: OwnershipLabels): TargetFacts | undefined {
  const kind = EVENT_KINDS[str(ev.Type)];
  if (!kind) return undefined;
  const actor = (ev.Actor ?? {}) as Record<string, unknown>;
  const attrs = labelMap(actor.Attributes);
  return targetFacts(kind, str(actor.ID), attrs.name ?? '', attrs.image ?? '', attrs, own);
}

/** Max bytes of one event object; dockerd's events are small. Larger ones are dropped, not relayed. */
const MAX_EVENT_BYTES = 1024 * 1024;

/**
 * dockerd writes events as JSON objects one after another (json.Encoder: one per line). Each is
 * judged on its own; events of other kinds (daemon, plugin, ...) have no owner and are shown
 * only when the filter allows an object with empty facts.
 */
export function createEventFilter(keep: ItemFilter, own: OwnershipLabels): Transform {
  let pending = '';
  // A multi-byte character may be split across chunks.
  const decoder = new StringDecoder('utf8');
  const none: TargetFacts = { kind: 'container', labels: {}, owner: '', team: '', name: '', image: '', id: '' };
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      pending += decoder.write(chunk);
      let nl: number;
      let out = '';
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl + 1);
        pending = pending.slice(nl + 1);
        if (line.trim() === '') continue;
        let ev: unknown;
        try {
          ev = JSON.parse(line);
        } catch {
          continue; // an event we cannot read is not shown
        }
        if (!ev || typeof ev !== 'object') continue;
        const f = eventFacts(ev as Record<string, unknown>, own) ?? none;
        if (keep(f)) out += line;
      }
      if (pending.length > MAX_EVENT_BYTES) pending = '';
      cb(null, out.length > 0 ? out : undefined);
    },
  });
}
