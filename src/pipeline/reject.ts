/** The one place that writes the gateway's own refusals, in Docker's error shape. */
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { errorBody } from '../errors.js';
import type { Rejection } from '../types.js';

function headersFor(r: Rejection, body: string, close: boolean): Record<string, string> {
  const h: Record<string, string> = {
    'Content-Type': 'application/json',
    'Content-Length': String(Buffer.byteLength(body)),
  };
  if (r.status === 401) h['WWW-Authenticate'] = 'Bearer realm="dockward"';
  // A body we did not read is still on the wire: the connection cannot carry another request.
  if (close) h.Connection = 'close';
  return h;
}

export function rejectHttp(res: ServerResponse, r: Rejection, opts: { head: boolean }): void {
  const body = errorBody(r);
  res.writeHead(r.status, headersFor(r, body, false));
  res.end(opts.head ? undefined : body);
}

/** The whole answer as bytes: for connections the gateway writes itself (upgrades, the raw relay). */
export function rejectionBytes(r: Rejection, opts: { close: boolean; head?: boolean }): string {
  const body = errorBody(r);
  let head = `HTTP/1.1 ${r.status} ${STATUS_CODES[r.status] ?? ''}\r\n`;
  for (const [k, v] of Object.entries(headersFor(r, body, opts.close))) head += `${k}: ${v}\r\n`;
  return opts.head ? `${head}\r\n` : `${head}\r\n${body}`;
}

export function rejectSocket(socket: Duplex, r: Rejection): void {
  socket.end(rejectionBytes(r, { close: true }));
}
