/** Stage 1: who is calling. The Authorization header never reaches dockerd. */
import { rejection } from '../errors.js';
import type { Identity } from '../types.js';
import type { TokenVerifier } from '../auth/jwt.js';
import type { Stage } from './context.js';

export interface AuthenticateDeps {
  verifier?: TokenVerifier;
  anonymous: boolean;
  onFailure?: (reason: string) => void;
}

const ANONYMOUS: Identity = Object.freeze({ user: 'anonymous', groups: Object.freeze([]) as readonly string[], via: 'anonymous' as const });

export function createAuthenticate(deps: AuthenticateDeps): Stage {
  const fail = (reason: string, message: string) => {
    deps.onFailure?.(reason);
    return rejection('unauthenticated', message);
  };
  return (ctx) => {
    const header = ctx.headers.authorization;
    // Stripped here, before anything else can copy the headers onward.
    delete ctx.headers.authorization;
    if (header === undefined) {
      if (deps.anonymous) {
        ctx.identity = ANONYMOUS;
        return undefined;
      }
      return fail('missing', 'authentication required: send Authorization: Bearer <token>');
    }
    const m = /^Bearer +([A-Za-z0-9\-_=.+/]+) *$/i.exec(header);
    if (!m) return fail('malformed', 'malformed Authorization header: expected "Bearer <token>"');
    if (!deps.verifier) return fail('malformed', 'bearer tokens are not accepted by this gateway');
    const r = deps.verifier.verify(m[1]!);
    if (!r.ok) return fail(r.reason, `invalid token: ${r.message}`);
    ctx.identity = r.identity;
    return undefined;
  };
}
