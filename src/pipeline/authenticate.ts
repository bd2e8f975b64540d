/**
 * Stage 1: who is calling. The Authorization header never reaches dockerd.
 *
 * Credentials: a bearer token (`auth.jwt`) and/or the connection's client certificate
 * (`tls.clientCA`). Every credential a request presents must verify - a bad token next to a
 * good certificate is refused, never skipped - and when both verify, `auth.precedence` says
 * whose identity counts (`Identity.via` records which one did).
 *
 * Synchronous unless a token is seen for the first time (the verifier caches verified tokens).
 */
import { rejection } from '../errors.js';
import type { Identity, Rejection } from '../types.js';
import type { TokenResult, TokenVerifier } from '../auth/jwt.js';
import { NO_PEER, type PeerResult } from '../auth/mtls.js';
import type { RequestContext, Stage } from './context.js';

export interface AuthenticateDeps {
  verifier?: TokenVerifier;
  anonymous: boolean;
  /** The client-certificate identity of the request's connection (mTLS); absent without `tls.clientCA`. */
  peer?: (ctx: RequestContext) => PeerResult;
  /** When a verified certificate and a verified token are both presented. Default `mtls`. */
  precedence?: 'mtls' | 'jwt';
  onFailure?: (reason: string) => void;
}

const ANONYMOUS: Identity = Object.freeze({ user: 'anonymous', groups: Object.freeze([]) as readonly string[], via: 'anonymous' as const });

export function createAuthenticate(deps: AuthenticateDeps): Stage {
  const precedence = deps.precedence ?? 'mtls';
  const fail = (reason: string, message: string) => {
    deps.onFailure?.(reason);
    return rejection('unauthenticated', message);
  };
  const missing = deps.peer
    ? deps.verifier
      ? 'authentication required: present a client certificate or send Authorization: Bearer <token>'
      : 'authentication required: present a client certificate signed by the gateway\'s client CA'
    : 'authentication required: send Authorization: Bearer <token>';

  return (ctx) => {
    const header = ctx.headers.authorization;
    // Stripped here, before anything else can copy the headers onward.
    delete ctx.headers.authorization;
    const peer = deps.peer ? deps.peer(ctx) : NO_PEER;
    if (peer.kind === 'refused') return fail('certificate', peer.message);

    if (header === undefined) {
      if (peer.kind === 'ok') {
        ctx.identity = peer.identity;
        return undefined;
      }
      if (deps.anonymous) {
        ctx.identity = ANONYMOUS;
        return undefined;
      }
      return fail('missing', missing);
    }
    const m = /^Bearer +([A-Za-z0-9\-_=.+/]+) *$/i.exec(header);
    if (!m) return fail('malformed', 'malformed Authorization header: expected "Bearer <token>"');
    if (!deps.verifier) return fail('malformed', 'bearer tokens are not accepted by this gateway');

    const settle = (r: TokenResult): Rejection | undefined => {
      if (!r.ok) return fail(r.reason, `invalid token: ${r.message}`);
      ctx.identity = peer.kind === 'ok' && precedence === 'mtls' ? peer.identity : r.identity;
      return undefined;
    };
    const r = deps.verifier.verify(m[1]!);
    return r instanceof Promise ? r.then(settle) : settle(r);
  };
}
