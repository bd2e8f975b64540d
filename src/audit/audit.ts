/**
 * One JSON line per decision (interface.md). The sink never blocks the proxy path: when the
 * destination falls behind by more than `highWaterBytes`, records are dropped and counted
 * (dockward_audit_dropped_total) rather than buffered without bound. Tokens and secrets never
 * reach a record: it is built from the request context, which holds no credentials.
 */
import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';

export interface AuditRecord {
  time: string;
  requestId: string;
  subject: { user: string; groups: readonly string[]; via: string } | null;
  remote: string;
  method: string;
  path: string;
  action: string;
  target: string | null;
  decision: string;
  rule: string | null;
  reason: string | null;
  status: number;
  durationMs: number;
  bytesIn: number;
  bytesOut: number;
}

export interface AuditSink {
  write(record: AuditRecord): void;
  close(): Promise<void>;
}

export function createAuditSink(file: string, onDrop: () => void, highWaterBytes = 8 * 1024 * 1024): AuditSink {
  const stream: Writable = file === '-' ? process.stdout : createWriteStream(file, { flags: 'a', mode: 0o640 });
  let broken = false;
  stream.on('error', () => {
    broken = true;
  });
  return {
    write(record) {
      if (broken || stream.writableLength > highWaterBytes) {
        onDrop();
        return;
      }
      stream.write(JSON.stringify(record) + '\n');
    },
    close() {
      if (stream === process.stdout) return Promise.resolve();
      return new Promise((resolve) => stream.end(resolve));
    },
  };
}
