#!/usr/bin/env node
/**
 * The floor of any proxy written in Node (bench --peers): a byte relay from TCP to the daemon's
 * unix socket, one daemon connection per client connection, no parsing and no checks. The bench
 * measures it side by side with dockward, so a run shows what one more hop costs on its machine
 * (the daemon, the load generator and the relay sharing two cores) apart from what dockward's
 * own work costs. Usage: byte-relay.js <port> <daemon socket>; listens on 127.0.0.1:<port>.
 */
import net from 'node:net';

const port = Number(process.argv[2]);
const socketPath = process.argv[3];
if (!Number.isInteger(port) || !socketPath) {
  console.error('usage: byte-relay.js <port> <daemon socket>');
  process.exit(2);
}

const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
  const daemon = net.connect({ path: socketPath, allowHalfOpen: true });
  // pipe() carries backpressure both ways and passes each side's end (a half-close) on.
  client.pipe(daemon);
  daemon.pipe(client);
  client.on('error', () => daemon.destroy());
  daemon.on('error', () => client.destroy());
  client.on('close', () => daemon.destroy());
  daemon.on('close', () => client.destroy());
});
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
// The bench holds our stdin: if it dies without stopping us (SIGKILL), the pipe ends and so do we.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
