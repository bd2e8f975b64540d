/**
 * One typed request context: each stage writes its own field. The plain HTTP handler and the
 * upgrade (hijack) handler both build one of these and run the same stages over it.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { ActionDef, CanonicalRequest, Classification, Decision, Identity, OwnershipLabels, Rejection, TargetFacts } from '../types.js';

/** Where the request body comes from: the IncomingMessage, or an upgraded socket. */
export interface BodySource {
  /** Whether the request carries a body (Content-Length > 0 or Transfer-Encoding). */
  readonly present: boolean;
  /**
   * Reads the whole body, refusing (with a Rejection) past `limit` bytes. Only called for
   * inspected (`json`) bodies: every other body streams through untouched.
   */
  read(limit: number): Promise<Buffer | Rejection>;
}

export interface RequestContext {
  readonly id: string;
  readonly startNs: bigint;
  readonly remote: string;
  /** The client connection (a TLSSocket under TLS: the client certificate is read from it). */
  readonly socket: Socket;
  readonly method: string;
  /** The request target exactly as received; forwarded unchanged. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly upgrade: boolean;
  readonly bodySource: BodySource;

  identity?: Identity;
  request?: CanonicalRequest;
  classification?: Classification;
  actionDef?: ActionDef;
  /**
   * Set when the gateway pins the request to the object it judged (a name resolved to the
   * container's full id, issue 4); otherwise `url` is forwarded.
   */
  forwardUrl?: string;
  /** The inspected body bytes: what the policy read is what dockerd receives. */
  body?: Buffer;
  bodyJson?: unknown;
  /**
   * Set on list and events actions whose allowing rules have target conditions: the answer is
   * filtered item by item instead of the request being denied (issue 4).
   */
  responseFilter?: ResponseFilter;
  /** The existing object the request acts on, read from the daemon (issue 4). */
  target?: TargetFacts;
  decision?: Decision;
  rejection?: Rejection;
  /** When the gateway finished deciding (the rest is the daemon's time). */
  decidedNs?: bigint;
  status?: number;
  bytesIn: number;
  bytesOut: number;
  upstreamError?: string;
}

export interface ResponseFilter {
  /** Whether the caller may see this item (a policy decision with the item as target). */
  keep(item: TargetFacts): boolean;
  /** The label names that hold owner and team, to read them out of list items. */
  readonly ownership: OwnershipLabels;
}

export type StageResult = Rejection | undefined;
export type Stage = (ctx: RequestContext) => StageResult | Promise<StageResult>;

let seq = 0;
const prefix = Math.floor(Math.random() * 0xffffff).toString(16).padStart(6, '0');
/** Cheap, unique-per-process request ids (randomUUID costs more than the rest of a ping's checks). */
export function nextRequestId(): string {
  seq = (seq + 1) % Number.MAX_SAFE_INTEGER;
  return `${prefix}-${seq.toString(36)}`;
}
