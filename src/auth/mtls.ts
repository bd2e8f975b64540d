/**
 * Client-certificate identities (mTLS, `tls.clientCA`): the stock `docker --tlsverify --tlscert
 * --tlskey` flow authenticates without any token. The TLS layer has already checked the chain
 * against `tls.clientCA`; this module only reads a name and groups out of a certificate the
 * handshake verified, and never out of one it did not.
 *
 * The identity is computed once per connection: the listener disables TLS renegotiation, so a
 * connection cannot change its certificate after the handshake.
 */
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { Identity } from '../types.js';
import type { MtlsConfig } from '../config/schema.js';

/** What the connection's client certificate says about the caller. */
export type PeerResult =
  /** No client certificate (or not a TLS connection). */
  | { readonly kind: 'none' }
  | { readonly kind: 'ok'; readonly identity: Identity }
  /** A certificate was presented, but it is not trusted or names nobody usable. */
  | { readonly kind: 'refused'; readonly message: string };

export const NO_PEER: PeerResult = Object.freeze({ kind: 'none' });

/** The parts of a Node `PeerCertificate` that are read. */
export interface CertificateFields {
  subject?: Record<string, string | string[] | undefined>;
  subjectaltname?: string;
}

const MAX_NAME = 256;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function usableName(v: string): boolean {
  return v.length > 0 && v.length <= MAX_NAME && !CONTROL.test(v) && v.trim() === v;
}

/**
 * Splits Node's `subjectaltname` text (`DNS:a.example, email:x@y, URI:spiffe://td/x`) into
 * entries. Node writes a value that contains a comma or a quote as a JSON string
 * (`DNS:"a,b"`, since the CVE-2021-44532 fix), so those are read as JSON, never split.
 */
export function parseSubjectAltNames(text: string | undefined): { type: string; value: string }[] | undefined {
  if (!text) return [];
  const out: { type: string; value: string }[] = [];
  const re = /([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,"]*)(?:, |$)/y;
  let i = 0;
  while (i < text.length) {
    re.lastIndex = i;
    const m = re.exec(text);
    if (!m || m[0].length === 0) return undefined;
    let value = m[2]!;
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        return undefined;
      }
    }
    out.push({ type: m[1]!, value });
    i = re.lastIndex;
  }
  return out;
}

const SAN_TYPES = { 'san-email': 'email', 'san-dns': 'DNS', 'san-uri': 'URI' } as const;

function listOf(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

/** The identity a verified certificate stands for, per `auth.mtls`. */
export function identityFromCertificate(cert: CertificateFields, cfg: MtlsConfig): { ok: true; identity: Identity } | { ok: false; message: string } {
  let user: string | undefined;
  if (cfg.user === 'cn') {
    const cns = listOf(cert.subject?.CN);
    // Two CNs: which one is the caller? Refuse rather than guess.
    if (cns.length !== 1) return { ok: false, message: `the client certificate has ${cns.length} subject common names (CN); exactly one is needed` };
    user = cns[0];
  } else {
    const sans = parseSubjectAltNames(cert.subjectaltname);
    if (sans === undefined) return { ok: false, message: 'the client certificate subjectAltName cannot be read' };
    // The first one, in the order the CA signed them (hosts list their main name first).
    const type = SAN_TYPES[cfg.user];
    user = sans.find((s) => s.type === type)?.value;
    if (user === undefined) return { ok: false, message: `the client certificate has no ${type} subjectAltName (auth.mtls.user: ${cfg.user})` };
  }
  if (!usableName(user!)) return { ok: false, message: 'the client certificate names no usable user (empty, too long or control characters)' };

  let groups: string[];
  if (cfg.groups === 'ou') groups = listOf(cert.subject?.OU);
  else if (cfg.groups === 'map') groups = [...(cfg.groupMap?.[user!] ?? [])];
  else groups = [];
  if (!groups.every(usableName)) return { ok: false, message: 'the client certificate has an unusable organizational unit (OU) name' };
  return { ok: true, identity: Object.freeze({ user: user!, groups: Object.freeze([...new Set(groups)]), via: 'mtls' as const }) };
}

/**
 * The identity of a TLS connection's client certificate, computed once per connection. With
 * `clientAuth: require` the handshake has refused every untrusted certificate already; with
 * `optional` a client may connect with an untrusted one, and that is refused here (a credential
 * that does not verify never falls through to another).
 */
export function createPeerIdentities(cfg: MtlsConfig): (socket: TLSSocket) => PeerResult {
  const bySocket = new WeakMap<TLSSocket, PeerResult>();
  return (socket) => {
    let r = bySocket.get(socket);
    if (r === undefined) {
      r = peerOf(socket, cfg);
      bySocket.set(socket, r);
    }
    return r;
  };
}

function peerOf(socket: TLSSocket, cfg: MtlsConfig): PeerResult {
  if (typeof socket.getPeerCertificate !== 'function') return NO_PEER;
  const cert: PeerCertificate | Record<string, never> = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return NO_PEER;
  if (!socket.authorized) {
    return { kind: 'refused', message: `the client certificate is not trusted (${String(socket.authorizationError ?? 'not signed by tls.clientCA')})` };
  }
  const r = identityFromCertificate(cert as CertificateFields, cfg);
  return r.ok ? { kind: 'ok', identity: r.identity } : { kind: 'refused', message: r.message };
}
