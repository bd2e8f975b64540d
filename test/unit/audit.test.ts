/**
 * The audit trail: the record's shape, credentials that never reach it, and a sink that never
 * blocks the proxy (drops are counted instead).
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { createAuditSink, redact, type AuditDropReason, type AuditRecord } from '../../src/audit/audit.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import type { RequestContext } from '../../src/pipeline/context.js';
import { createObserver, isoTime } from '../../src/pipeline/observe.js';
import { Socket } from 'node:net';

const dir = mkdtempSync(path.join(os.tmpdir(), 'dw-audit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const INTERFACE_FIELDS = ['time', 'requestId', 'subject', 'remote', 'method', 'path', 'action', 'target', 'decision', 'rule', 'reason', 'status', 'durationMs', 'bytesIn', 'bytesOut'];

function record(over: Partial<AuditRecord> = {}): AuditRecord {
  return {
    time: new Date().toISOString(),
    event: 'request',
    requestId: 'r-1',
    subject: { user: 'alice', groups: ['dev'], via: 'jwt' },
    remote: '127.0.0.1',
    method: 'GET',
    path: '/containers/json',
    action: 'container.list',
    target: null,
    decision: 'allow',
    rule: 'everyone-reads',
    reason: 'rule everyone-reads allows container.list',
    status: 200,
    durationMs: 1.234,
    bytesIn: 0,
    bytesOut: 2,
    error: null,
    ...over,
  };
}

async function eventually(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// First in the file: the time cache starts empty, as in a fresh process.
describe('the record time', () => {
  it('reads as Date#toISOString, across seconds, in any order, and outside four-digit years', () => {
    const start = Date.UTC(2026, 10, 30, 23, 59, 58, 990);
    // -1 first: the cache must not answer a time it has never made.
    const times: number[] = [-1];
    // Through midnight, the end of a month, millisecond by millisecond, then jumping around
    // (a fixed sequence, so a failure replays).
    for (let ms = start; ms < start + 3_000; ms++) times.push(ms);
    let x = 12345;
    for (let i = 0; i < 2_000; i++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      times.push(Math.floor((x / 2147483648) * 253402300800000));
    }
    times.push(0, 999, 1000, -1, -1001, -62167219200000, 253402300799999, 253402300800000, 8.64e15, -8.64e15, 1.5, -0);
    for (const ms of times) expect(isoTime(ms)).toBe(new Date(ms).toISOString());
  });
});

describe('the audit record', () => {
  const JWT = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImdyb3VwcyI6WyJkZXYiXX0.c2lnbmF0dXJlLXNpZ25hdHVyZQ';
  const REGISTRY_AUTH = Buffer.from(JSON.stringify({ username: 'alice', password: 'hunter2-registry' })).toString('base64');

  function observed(over: Partial<RequestContext>): AuditRecord {
    const records: AuditRecord[] = [];
    const observer = createObserver(createMetrics(new Registry(), { defaultMetrics: false }), { write: (r) => void records.push(r), reopen() {}, close: async () => {} });
    observer.finish({
      id: 'abc-1',
      startNs: process.hrtime.bigint(),
      remote: '10.0.0.7',
      method: 'POST',
      url: '/v1.41/containers/create?name=web',
      headers: { authorization: `Bearer ${JWT}`, 'x-registry-auth': REGISTRY_AUTH, cookie: 'session=s3cr3t-cookie' },
      upgrade: false,
      bodySource: { present: true, read: async () => Buffer.alloc(0) },
      bytesIn: 0,
      bytesOut: 0,
      ...over,
      socket: over.socket ?? new Socket(),
    });
    return records[0]!;
  }

  it('has the fields of interface.md (plus event and error), in that order', () => {
    const r = observed({
      identity: { user: 'alice', groups: ['dev'], via: 'jwt' },
      request: { path: '/containers/create', query: { name: 'web' }, rawQuery: 'name=web', apiVersion: '1.41' },
      classification: { action: 'container.create', params: {} },
      decision: { effect: 'allow', rule: 'dev-creates', reason: 'rule dev-creates allows container.create' },
      decidedNs: process.hrtime.bigint(),
      status: 201,
      bytesOut: 88,
    });
    expect(Object.keys(r).filter((k) => k !== 'event' && k !== 'error')).toEqual(INTERFACE_FIELDS);
    expect(r).toMatchObject({
      event: 'request',
      requestId: 'abc-1',
      subject: { user: 'alice', groups: ['dev'], via: 'jwt' },
      remote: '10.0.0.7',
      method: 'POST',
      path: '/containers/create',
      action: 'container.create',
      target: null,
      decision: 'allow',
      rule: 'dev-creates',
      status: 201,
      bytesOut: 88,
      error: null,
    });
    expect(new Date(r.time).toISOString()).toBe(r.time);
  });

  it('records an unauthenticated request with a null subject and the raw path without its query', () => {
    const r = observed({ url: '/v1.41/containers/abc/kill?signal=KILL', rejection: { status: 401, code: 'unauthenticated', message: 'authentication required: send Authorization: Bearer <token>' } });
    expect(r).toMatchObject({ subject: null, path: '/v1.41/containers/abc/kill', action: 'unclassified', decision: 'unauthenticated', rule: null, status: 401 });
    expect(r.reason).toBe('authentication required: send Authorization: Bearer <token>');
  });

  it('never contains the token, X-Registry-Auth, cookies or secrets quoted from the body', () => {
    const env = ['PATH=/bin', 'DB_PASSWORD=hunter2-env', `API_TOKEN=${JWT}`];
    const r = observed({
      identity: { user: 'alice', groups: ['dev'], via: 'jwt' },
      request: { path: '/containers/create', query: {}, rawQuery: '', apiVersion: '1.41' },
      classification: { action: 'container.create', params: {} },
      body: Buffer.from(JSON.stringify({ Image: 'busybox', Env: env })),
      bodyJson: { Image: 'busybox', Env: env },
      // A deny reason quotes what the request has: here the Env list a rule looked at.
      decision: { effect: 'deny', rule: 'no-env-secrets', reason: `rule no-env-secrets needs body.Env ..., request has ${JSON.stringify(env)}` },
      rejection: { status: 403, code: 'denied', message: `denied by rule no-env-secrets: request has ${JSON.stringify(env)}; {"password": "hunter2-json"}` },
    });
    const line = JSON.stringify(r);
    for (const secret of [JWT, 'eyJ', REGISTRY_AUTH, 'hunter2', 's3cr3t-cookie']) expect(line).not.toContain(secret);
    expect(r.reason).toContain('DB_PASSWORD=[redacted]');
    expect(r.reason).toContain('PATH=/bin');
  });

  it.each([
    ['a JWT anywhere', `token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig-nature_1 here`, 'token [redacted] here'],
    ['a bearer credential', 'Authorization: Bearer abcdefgh12345678', 'Authorization: Bearer [redacted]'],
    ['a basic credential', 'basic YWxpY2U6aHVudGVyMg==', 'basic [redacted]'],
    ['an Env entry', '["A=1","MYSQL_ROOT_PASSWORD=x y"]', '["A=1","MYSQL_ROOT_PASSWORD=[redacted] y"]'],
    ['a JSON member', '{"identitytoken": "abc", "user": "bob"}', '{"identitytoken": "[redacted]", "user": "bob"}'],
    ['a query parameter', 'GET /x?access_token=abc&b=2', 'GET /x?access_token=[redacted]&b=2'],
  ])('redacts %s', (_name, text, expected) => {
    expect(redact(text)).toBe(expected);
  });

  it.each([
    ['the 401 text', 'authentication required: send Authorization: Bearer <token>'],
    ['an expired token', 'invalid token: token expired'],
    ['a denial', 'denied by rule dev-runs-containers: rule dev-runs-containers needs query.signal == "TERM", request has "KILL"'],
    ['a path', '/containers/web-1/attach'],
  ])('leaves ordinary text alone: %s', (_name, text) => {
    expect(redact(text)).toBe(text);
  });
});

/** A destination that keeps each write it gets, as one string per write. */
function recordingStream(): { dest: Writable; writes: string[] } {
  const writes: string[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, done) {
      writes.push(chunk.toString());
      done();
    },
  });
  return { dest, writes };
}

describe('the audit sink', () => {
  it('writes one JSON line per record to a file', async () => {
    const file = path.join(dir, 'plain.log');
    const sink = createAuditSink({ file });
    sink.write(record({ requestId: 'a' }));
    sink.write(record({ requestId: 'b' }));
    await sink.close();
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as AuditRecord).requestId)).toEqual(['a', 'b']);
  });

  it('writes the records of a busy stretch together, in order, within batchMs', async () => {
    const { dest, writes } = recordingStream();
    const sink = createAuditSink({ file: 'unused', stream: dest, batchMs: 40 });
    const t0 = Date.now();
    // One record per event-loop turn, as requests end on a busy gateway.
    for (let i = 0; i < 30; i++) {
      sink.write(record({ requestId: `r-${i}` }));
      await new Promise((r) => setImmediate(r));
    }
    await eventually(() => writes.join('').split('\n').length > 30, 'all 30 records');
    const waited = Date.now() - t0;
    // Not a write per turn (a thread-pool job each, for a file): 30 turns fit in one or two batches.
    expect(writes.length).toBeLessThanOrEqual(2);
    expect(waited).toBeGreaterThanOrEqual(35);
    const ids = writes.join('').trimEnd().split('\n').map((l) => (JSON.parse(l) as AuditRecord).requestId);
    expect(ids).toEqual(Array.from({ length: 30 }, (_, i) => `r-${i}`));
    await sink.close();
  });

  it('writes a stream-open record at once, with the records queued before it', async () => {
    const { dest, writes } = recordingStream();
    // A batch window no test would sit out: only the stream-open record can cause the write.
    const sink = createAuditSink({ file: 'unused', stream: dest, batchMs: 60_000 });
    sink.write(record({ requestId: 'before' }));
    sink.write(record({ requestId: 'session', event: 'stream-open', status: null }));
    await new Promise((r) => setImmediate(r));
    expect(writes.join('')).toContain('"before"');
    expect(writes.join('')).toContain('"session"');
    await sink.close();
  });

  it('writes a batch that reaches 64 KiB at once, whatever is left of its window', async () => {
    const { dest, writes } = recordingStream();
    const sink = createAuditSink({ file: 'unused', stream: dest, batchMs: 60_000 });
    // Records of ~1.25 KB (a long path): about 52 of them pass 64 KiB.
    const long = '/containers/' + 'x'.repeat(900) + '/json';
    for (let i = 0; i < 40; i++) sink.write(record({ requestId: `a-${i}`, path: long }));
    await new Promise((r) => setImmediate(r));
    expect(writes).toEqual([]);
    for (let i = 0; i < 40; i++) sink.write(record({ requestId: `b-${i}`, path: long }));
    await new Promise((r) => setImmediate(r));
    expect(writes.length).toBe(1);
    expect(writes[0]!.split('\n').length).toBe(81);
    await sink.close();
  });

  it('counts the records of a waiting batch as dropped when the destination fails before the batch is written', async () => {
    const { dest, writes } = recordingStream();
    dest.on('error', () => {});
    const drops: AuditDropReason[] = [];
    const sink = createAuditSink({ file: 'unused', stream: dest, batchMs: 20, onDrop: (r) => drops.push(r) });
    sink.write(record({ requestId: 'a' }));
    sink.write(record({ requestId: 'b' }));
    dest.destroy(new Error('disk gone'));
    await eventually(() => drops.length === 2, 'the two waiting records counted');
    expect(drops).toEqual(['error', 'error']);
    expect(writes).toEqual([]);
    await sink.close();
  });

  it('close() writes a batch that is still waiting for its window', async () => {
    const file = path.join(dir, 'waiting.log');
    const sink = createAuditSink({ file, batchMs: 60_000 });
    sink.write(record({ requestId: 'waiting' }));
    await sink.close();
    expect(readFileSync(file, 'utf8')).toContain('"waiting"');
  });

  it('drops and counts records instead of buffering without bound when the destination stalls', async () => {
    // A destination that accepts one write and never finishes it.
    const stalled = new Writable({ write: () => {} });
    const drops: AuditDropReason[] = [];
    const sink = createAuditSink({ file: 'unused', stream: stalled, highWaterBytes: 10_000, batchMs: 1, onDrop: (r) => drops.push(r), closeTimeoutMs: 50 });
    for (let i = 0; i < 1000; i++) sink.write(record({ requestId: `r-${i}` }));
    // While the first batch waits for its window, it is the backlog.
    expect(drops.length).toBeGreaterThan(900);
    await eventually(() => stalled.writableLength > 0, 'the first batch handed to the destination');
    const held = stalled.writableLength;
    // The limit is checked before a record is added, so one record may go past it.
    expect(held).toBeLessThan(12_000);
    // Once the destination holds that batch and never finishes it, every later record is dropped.
    const before = drops.length;
    for (let i = 0; i < 1000; i++) sink.write(record({ requestId: `s-${i}` }));
    expect(drops.length - before).toBe(1000);
    await new Promise((r) => setTimeout(r, 20));
    expect(stalled.writableLength).toBe(held);
    expect(new Set(drops)).toEqual(new Set(['backlog']));
    // Shutting down is not held up by a stuck destination either.
    await sink.close();
  });

  it('does not block the event loop when audit.file is a named pipe whose reader stopped reading', async () => {
    const fifo = path.join(dir, 'stuck.fifo');
    execFileSync('mkfifo', [fifo]);
    // Holding a read end open that nobody reads: the pipe fills up after 64 KiB.
    const reader = openSync(fifo, 'r+');
    const drops: AuditDropReason[] = [];
    const sink = createAuditSink({ file: fifo, highWaterBytes: 256 * 1024, onDrop: (r) => drops.push(r), closeTimeoutMs: 100 });
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 1);
    const big = 'x'.repeat(1000);
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 100; i++) sink.write(record({ requestId: `${round}-${i}`, reason: big }));
      // The loop still turns: timers fire while the pipe is full.
      const before = ticks;
      await eventually(() => ticks > before, 'a timer tick while the audit pipe is full');
    }
    clearInterval(ticker);
    expect(drops.length).toBeGreaterThan(0);
    // Drain the pipe so the thread-pool write in flight completes and the test can clean up.
    const buf = Buffer.alloc(1 << 16);
    const drain = setInterval(() => {
      try {
        readSync(reader, buf);
      } catch {
        /* done */
      }
    }, 1);
    await sink.close();
    clearInterval(drain);
    closeSync(reader);
  });

  it('counts records lost to a failing destination, and recovers by reopening it', async () => {
    const sub = path.join(dir, 'later');
    const file = path.join(sub, 'audit.log');
    const drops: AuditDropReason[] = [];
    const errors: Error[] = [];
    // The directory does not exist yet: opening fails.
    let recovered = 0;
    const sink = createAuditSink({ file, retryMs: 20, onDrop: (r) => drops.push(r), onError: (e) => errors.push(e), onRecover: () => recovered++ });
    await eventually(() => errors.length > 0, 'the open error');
    sink.write(record({ requestId: 'lost' }));
    expect(drops).toEqual(['error']);
    // Retried (20, 40, 80 ms ...) but reported once.
    await new Promise((r) => setTimeout(r, 200));
    expect(errors).toHaveLength(1);
    mkdirSync(sub);
    await eventually(() => {
      sink.write(record({ requestId: 'kept' }));
      return drops.length < 1000 && (() => {
        try {
          return readFileSync(file, 'utf8').includes('"kept"');
        } catch {
          return false;
        }
      })();
    }, 'a record written after the reopen');
    await eventually(() => recovered === 1, 'the recovery notice');
    await sink.close();
    expect(readFileSync(file, 'utf8')).not.toContain('"lost"');
    expect(errors).toHaveLength(1);
  });

  it('reopen() starts a new file after log rotation moved the old one away', async () => {
    const file = path.join(dir, 'rotated.log');
    const sink = createAuditSink({ file });
    sink.write(record({ requestId: 'before' }));
    await eventually(() => {
      try {
        return readFileSync(file, 'utf8').includes('before');
      } catch {
        return false;
      }
    }, 'the first record');
    execFileSync('mv', [file, `${file}.1`]);
    sink.reopen();
    sink.write(record({ requestId: 'after' }));
    await sink.close();
    expect(readFileSync(`${file}.1`, 'utf8')).toContain('"before"');
    expect(readFileSync(file, 'utf8')).toContain('"after"');
    expect(readFileSync(file, 'utf8')).not.toContain('"before"');
  });
});
