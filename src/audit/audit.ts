/**
 * The audit trail: one JSON line per decision (interface.md), written to a file or stdout.
 *
 * The sink never blocks the proxy path:
 * - a file is written through an fs.WriteStream (libuv's thread pool), also when it is stdout:
 *   process.stdout writes to a file synchronously, on the event loop, so a slow disk (NFS, a
 *   full journal) would hold up every request;
 * - a pipe or socket on stdout (a log shipper, journald) is written through process.stdout, which
 *   is a non-blocking libuv stream there (an fs stream would fail with EAGAIN on such an fd);
 * - when the destination falls behind by more than `highWaterBytes`, records are dropped and
 *   counted (dockward_audit_dropped_total{reason="backlog"}) rather than buffered without bound;
 * - when it fails (disk full, file removed, EPIPE), records are dropped and counted
 *   ({reason="error"}), and a file is reopened after a pause.
 *
 * Records are built from the request context, which holds no credentials (authenticate strips
 * the Authorization header and no header is copied into a record); `redact` is a second line of
 * defence for free text that echoes request values (a denial reason can quote body fields).
 */
import { createWriteStream, fstatSync, type WriteStream } from 'node:fs';
import type { Writable } from 'node:stream';

/**
 * - `request`: a request has ended (every request that was not announced by `stream-open`);
 * - `stream-open`: a hijacked session (attach, exec) was authorised and is handed to the daemon;
 *   written at once, so that a session that outlives the gateway (crash, kill -9) is on record;
 * - `stream-close`: that session has ended, with its duration and bytes.
 * Exactly one `request` or `stream-open` record exists per decision.
 */
export type AuditEvent = 'request' | 'stream-open' | 'stream-close';

export interface AuditRecord {
  /** When the record was written (ISO 8601, UTC). */
  time: string;
  event: AuditEvent;
  requestId: string;
  /** null when the caller was not authenticated. */
  subject: { user: string; groups: readonly string[]; via: string } | null;
  remote: string;
  method: string;
  /** The path as dockerd routes it (decoded, without `/vX.Y` and without the query string). */
  path: string;
  action: string;
  /** The object named in the path (`{id}` or `{name}`), or null. */
  target: string | null;
  /** allow | deny | unauthenticated | invalid | error (the `decision` label of dockward_requests_total). */
  decision: string;
  /** The rule that decided, `default-deny`, or null when no policy decision was reached. */
  rule: string | null;
  reason: string | null;
  /** The status the client got; null in a `stream-open` record (the daemon has not answered yet). */
  status: number | null;
  durationMs: number;
  /** Request body bytes relayed to the daemon (for sessions: everything the client sent). */
  bytesIn: number;
  /** Response bytes relayed from the daemon, after the head. */
  bytesOut: number;
  /** Why the exchange with the daemon failed or was cut (`unreachable`, `client_closed`, ...), else null. */
  error: string | null;
}

export type AuditDropReason = 'backlog' | 'error';

export interface AuditSink {
  /** Never blocks and never throws: a record that cannot be queued is dropped and counted. */
  write(record: AuditRecord): void;
  /** For log rotation: closes the destination and opens the same path again. */
  reopen(): void;
  /** Flushes and closes; resolves within `closeTimeoutMs` even when the destination is stuck. */
  close(): Promise<void>;
}

export interface AuditSinkOptions {
  /** A file path (appended to, created with mode 0640) or `-` for stdout. */
  file: string;
  onDrop?: (reason: AuditDropReason) => void;
  /** Told when the destination fails (once per failure streak: for the operational log). */
  onError?: (err: Error) => void;
  /** Told when a record reached the destination again after a failure. */
  onRecover?: () => void;
  /** Default 8 MiB. */
  highWaterBytes?: number;
  /** How long a `request` record may wait to share a write with later ones. Default 100 ms. */
  batchMs?: number;
  /** After a failure, how long to wait before reopening (doubling, up to 60 s, while it keeps failing). Default 5 s. */
  retryMs?: number;
  closeTimeoutMs?: number;
  /** Tests: write here instead of opening `file`. */
  stream?: Writable;
}

export const DEFAULT_AUDIT_HIGH_WATER_BYTES = 8 * 1024 * 1024;
const DEFAULT_AUDIT_BATCH_MS = 100;
// A batch this large is written at once, whatever its age: one write of a few pages (about 140
// records; a gateway answering 5,000 pings a second fills one every 30 ms).
const BATCH_FLUSH_BYTES = 64 * 1024;

export function createAuditSink(o: AuditSinkOptions): AuditSink {
  const highWater = o.highWaterBytes ?? DEFAULT_AUDIT_HIGH_WATER_BYTES;
  const retryMs = o.retryMs ?? 5_000;
  const closeTimeoutMs = o.closeTimeoutMs ?? 2_000;
  const drop = (reason: AuditDropReason) => o.onDrop?.(reason);

  let stream: Writable;
  let broken = false;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  // A destination that keeps failing (stdout's reader gone for good) is retried less and less
  // often, and reported once per failure streak rather than at every retry.
  let failing = false;
  let retryDelay = retryMs;

  const open = (): Writable => {
    if (o.stream) return o.stream;
    if (o.file === '-') return stdoutStream();
    return createWriteStream(o.file, { flags: 'a', mode: 0o640 });
  };
  let detach = () => {};
  const attach = (s: Writable) => {
    stream = s;
    broken = false;
    const onError = (err: Error) => {
      if (s !== stream) return;
      broken = true;
      if (!failing) o.onError?.(err);
      else retryDelay = Math.min(retryDelay * 2, 60_000);
      failing = true;
      // A file can come back (disk space freed, directory restored); a stdout whose reader is
      // gone cannot.
      if (!closed && !o.stream && o.file !== '-' && retry === undefined) {
        retry = setTimeout(() => {
          retry = undefined;
          if (!closed) attach(open());
        }, retryDelay);
        retry.unref();
      }
    };
    s.on('error', onError);
    // process.stdout outlives the sink: a closed sink must not leave its listener on it.
    detach = () => s.off('error', onError);
  };
  attach(open());

  // Records go out in batches, one write per `batchMs` at most. A file write is a thread-pool job:
  // a futex wake, the worker's write, an eventfd write back and an extra event-loop turn. Once per
  // event-loop turn (about once per request on a busy gateway), that measured, per 1,000 `docker
  // ps` of 50 containers: 3,984 futex calls against 697 batched, and 674 against 591 µs of gateway
  // CPU per request (bench list phase, same-run A/B, 12 rounds). Each write still cost 0.5-1.1 ms
  // of the gateway's CPU on this 2-core VM: at ~300 `docker ps` a second, a 25 ms window against
  // 100 ms measured 596 against 483 µs per request (10 rounds, same run; 250 ms and 1 s bought
  // nothing more), and 25 ms against 1 s measured 523 against 457 µs in another run. A
  // `stream-open` record does not wait: it must be on record before the session it announces can
  // outlive a crash.
  const batchMs = o.batchMs ?? DEFAULT_AUDIT_BATCH_MS;
  let batch = '';
  let batchRecords = 0;
  let timer: NodeJS.Timeout | undefined;
  let immediate: NodeJS.Immediate | undefined;
  const flush = () => {
    if (timer) clearTimeout(timer);
    if (immediate) clearImmediate(immediate);
    timer = immediate = undefined;
    if (batch === '') return;
    const b = batch;
    const n = batchRecords;
    batch = '';
    batchRecords = 0;
    if (!closed && !broken && !stream.destroyed) return void stream.write(b);
    // The destination failed while these records waited for their window: lost, and counted.
    for (let i = 0; i < n; i++) drop('error');
  };

  return {
    write(record) {
      if (closed || broken || stream.destroyed) return drop('error');
      if (stream.writableLength + batch.length > highWater) return drop('backlog');
      if (!failing) {
        batch += JSON.stringify(record) + '\n';
        batchRecords++;
        if (record.event === 'stream-open' || batch.length >= BATCH_FLUSH_BYTES) immediate ??= setImmediate(flush);
        else timer ??= setTimeout(flush, batchMs);
        return;
      }
      // The first record after a reopen tells whether the destination works again.
      const s = stream;
      s.write(JSON.stringify(record) + '\n', (err) => {
        if (err || s !== stream || !failing) return;
        failing = false;
        retryDelay = retryMs;
        o.onRecover?.();
      });
    },
    reopen() {
      // stdout is not ours to reopen: whoever started the process owns what it points to.
      if (closed || o.stream || o.file === '-') return;
      const old = stream;
      flush();
      attach(open());
      if (!(old as WriteStream).destroyed) old.end();
    },
    close() {
      flush();
      closed = true;
      if (retry) clearTimeout(retry);
      const s = stream;
      if (s.destroyed || s.writableEnded) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, closeTimeoutMs);
        timer.unref();
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        // process.stdout is flushed, never ended: the process may still write to it.
        if (s === process.stdout) {
          detach();
          if (s.writableLength === 0) done();
          else s.once('drain', done);
        } else {
          s.end(done);
          s.once('error', () => {
            clearTimeout(timer);
            resolve();
          });
        }
      });
    },
  };
}

/** Where `audit.file: "-"` writes: see the module comment for why the kind of fd decides. */
function stdoutStream(): Writable {
  let isFile: boolean;
  try {
    const st = fstatSync(1);
    isFile = !st.isFIFO() && !st.isSocket();
  } catch {
    isFile = false;
  }
  return isFile ? createWriteStream('/dev/stdout', { fd: 1, autoClose: false }) : process.stdout;
}

// A JWT is three base64url segments and (header `{"`) starts with `eyJ`.
const JWT = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g;
const BEARER = /\b(bearer|basic)\s+[A-Za-z0-9\-_=.+/]{8,}/gi;
// `DB_PASSWORD=x` (an Env entry, a query) and `"api_key": "x"` (a quoted JSON member).
const SECRET_WORD = '(?:pass(?:word|wd)?|secret|token|api[_-]?key|private[_-]?key|credential|auth)';
const SECRET_ASSIGNMENT = new RegExp(`([A-Za-z0-9_.-]*${SECRET_WORD}[A-Za-z0-9_.-]*)=([^\\s",&\\\\}\\]]+)`, 'gi');
const SECRET_MEMBER = new RegExp(`("[^"]*${SECRET_WORD}[^"]*"\\s*:\\s*)"(?:[^"\\\\]|\\\\.)*"`, 'gi');
const QUICK = /eyJ|bearer|basic|pass|secret|token|key|credential|auth/i;

/**
 * Removes what looks like a credential from free text bound for the audit trail or a log: JWTs,
 * `Bearer x` / `Basic x`, and values assigned to secret-sounding names (`DB_PASSWORD=...`).
 * Heuristic by nature; it backs up the rule that records are never built from headers or bodies.
 */
export function redact(text: string): string {
  if (!QUICK.test(text)) return text;
  return text
    .replace(JWT, '[redacted]')
    .replace(BEARER, (_m, scheme: string) => `${scheme} [redacted]`)
    .replace(SECRET_ASSIGNMENT, (_m, name: string) => `${name}=[redacted]`)
    .replace(SECRET_MEMBER, (_m, member: string) => `${member}"[redacted]"`);
}

/** Audit fields are for people and log search, not a transport: cut pathological lengths. */
export function clip(text: string, max = 4096): string {
  return text.length <= max ? text : `${text.slice(0, max)}...[${text.length - max} more characters]`;
}
