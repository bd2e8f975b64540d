/**
 * Reads the object a request acts on from the daemon, at decision time (issue 4). The daemon
 * resolves the reference itself (full id, unique id prefix, name with or without `/`), so the
 * gateway judges exactly the object dockerd would act on; nothing is cached, so a name reused
 * after removal is judged on the new object.
 */
import http from 'node:http';
import type { OwnershipLabels, TargetFacts, TargetKind } from '../types.js';

export type TargetLookup =
  | { readonly status: 'found'; readonly target: TargetFacts }
  /** The daemon's own answer for an unknown reference (its 404 shape), relayed as is. */
  | { readonly status: 'missing'; readonly code: number; readonly body: Buffer; readonly contentType: string }
  | { readonly status: 'unsupported' }
  | { readonly status: 'error'; readonly message: string };

const MAX_INSPECT_BYTES = 8 * 1024 * 1024;
const LOOKUP_TIMEOUT_MS = 15_000;

interface Raw {
  code: number;
  body: Buffer;
  contentType: string;
}

export interface TargetResolver {
  resolve(kind: TargetKind, ref: string): Promise<TargetLookup>;
  close(): void;
}

/** A Docker `Labels` object as a string map (non-string values and non-objects read as none). */
export function labelMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, val] of Object.entries(v as Record<string, unknown>)) if (typeof val === 'string') out[k] = val;
  }
  return out;
}

/** The facts of an object: what an inspect answer, a list item or an event says about it. */
export function targetFacts(kind: TargetKind, id: string, name: string, image: string, labels: Record<string, string>, own: OwnershipLabels): TargetFacts {
  return Object.freeze({
    kind,
    id,
    name,
    image,
    owner: labels[own.ownerLabel] ?? '',
    team: labels[own.teamLabel] ?? '',
    labels: Object.freeze(labels),
  });
}

export function createTargetResolver(socketPath: string, ownership: OwnershipLabels): TargetResolver {
  const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 8 });

  function get(path: string): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const req = http.request({ socketPath, path, method: 'GET', agent, timeout: LOOKUP_TIMEOUT_MS }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_INSPECT_BYTES) req.destroy(new Error('inspect answer too large'));
          else chunks.push(c);
        });
        res.on('end', () => resolve({ code: res.statusCode ?? 0, body: Buffer.concat(chunks), contentType: String(res.headers['content-type'] ?? 'application/json') }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('the daemon did not answer the lookup in time')));
      req.on('error', reject);
      req.end();
    });
  }

  const facts = (kind: TargetKind, id: string, name: string, image: string, labels: Record<string, string>) => targetFacts(kind, id, name, image, labels, ownership);

  async function inspect(kind: TargetKind, ref: string): Promise<TargetLookup> {
    // dockerd's name lookup ignores one leading `/` (`/web` is `web`); in a path it would be `//`.
    const enc = encodeURIComponent(kind === 'container' ? ref.replace(/^\//, '') : ref);
    let path: string;
    switch (kind) {
      case 'container': path = `/containers/${enc}/json`; break;
      case 'image': path = `/images/${enc}/json`; break;
      case 'volume': path = `/volumes/${enc}`; break;
      case 'network': path = `/networks/${enc}`; break;
      case 'exec': path = `/exec/${enc}/json`; break;
      default: return { status: 'unsupported' };
    }
    let raw: Raw;
    try {
      raw = await get(path);
    } catch (err) {
      return { status: 'error', message: (err as Error).message };
    }
    if (raw.code === 404) return { status: 'missing', code: raw.code, body: raw.body, contentType: raw.contentType };
    if (raw.code !== 200) return { status: 'error', message: `the daemon answered ${raw.code} to ${path}` };
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(raw.body.toString('utf8')) as Record<string, unknown>;
    } catch {
      return { status: 'error', message: `unreadable answer to ${path}` };
    }
    const cfg = (doc.Config ?? {}) as Record<string, unknown>;
    switch (kind) {
      case 'container':
        return { status: 'found', target: facts(kind, String(doc.Id ?? ''), String(doc.Name ?? '').replace(/^\//, ''), String(cfg.Image ?? ''), labelMap(cfg.Labels)) };
      case 'image': {
        const tags = Array.isArray(doc.RepoTags) ? (doc.RepoTags as unknown[]).filter((t): t is string => typeof t === 'string') : [];
        return { status: 'found', target: facts(kind, String(doc.Id ?? ''), tags[0] ?? '', tags[0] ?? '', labelMap(cfg.Labels)) };
      }
      case 'volume':
        return { status: 'found', target: facts(kind, String(doc.Name ?? ''), String(doc.Name ?? ''), '', labelMap(doc.Labels)) };
      case 'network':
        return { status: 'found', target: facts(kind, String(doc.Id ?? ''), String(doc.Name ?? ''), '', labelMap(doc.Labels)) };
      case 'exec': {
        // An exec instance belongs to its container: it is judged by the container's owner and labels.
        const cid = doc.ContainerID;
        if (typeof cid !== 'string' || cid === '') return { status: 'error', message: 'exec instance without a container' };
        const c = await inspect('container', cid);
        return c.status === 'found' ? { status: 'found', target: { ...c.target, kind: 'exec' } } : c;
      }
      default:
        return { status: 'unsupported' };
    }
  }

  return {
    resolve: inspect,
    close: () => agent.destroy(),
  };
}
