/**
 * The closed catalogue of answers the gateway itself writes (everything else is the daemon's own
 * answer, streamed). One code -> one status; docs/errors.md is checked against this table by a test.
 */
import type { Rejection } from './types.js';

export const ERRORS = {
  unauthenticated: { status: 401, summary: 'no credentials, or credentials that do not verify' },
  denied: { status: 403, summary: 'a policy rule (or the default deny) refused the request' },
  bad_path: { status: 400, summary: 'a path dockerd could read differently than the gateway, or would not route' },
  bad_body: { status: 400, summary: 'a body the gateway cannot read exactly as dockerd would' },
  bad_framing: { status: 400, summary: 'ambiguous HTTP framing (Content-Length / Transfer-Encoding) or a bad upgrade' },
  body_too_large: { status: 413, summary: 'an inspected body larger than limits.inspectedBodyBytes' },
  not_found: { status: 404, summary: "the object the request names does not exist: the daemon's own answer, relayed" },
  upstream_unavailable: { status: 502, summary: 'the Docker daemon could not be reached' },
  bad_answer: { status: 502, summary: "a list answer the gateway must filter for the caller is too large or unreadable: it is refused, never passed on unfiltered" },
  internal: { status: 500, summary: 'a gateway fault; the request was not forwarded' },
} as const satisfies Record<string, { status: Rejection['status']; summary: string }>;

export type ErrorCode = keyof typeof ERRORS;

export function rejection(code: ErrorCode, message: string): Rejection {
  return { status: ERRORS[code].status, code, message };
}

/** Docker's error shape, so the docker CLI prints `Error response from daemon: dockward: ...`. */
export function errorBody(r: Rejection): string {
  return JSON.stringify({ message: r.fromDaemon ? r.message : `dockward: ${r.message}` });
}
