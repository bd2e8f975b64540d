/**
 * Proves the e2e infrastructure itself: the private dockerd (scripts/dockerd-test.sh), its
 * busybox:local image, and the harness (CLI runner, cleanup, gateway start/stop), mostly driven
 * against a stand-in gateway so that a failure there points at the infrastructure, not at
 * dockward; one test checks the harness still understands the real `dockward serve`.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  describeE2E,
  docker,
  dockerDirect,
  dockerSock,
  labelArgs,
  mergeConfig,
  mintToken,
  removeTestContainers,
  scratchDir,
  startGateway,
  TEST_IMAGE,
  TEST_LABEL,
  writeDockerConfigDir,
  type DockerResult,
  type Gateway,
} from './harness.js';

const RUN = ['run', '--rm', '--network', 'none', ...labelArgs(), TEST_IMAGE];

describeE2E('the private test dockerd', () => {
  it('answers on its own socket, with its data under its own directory (not a system daemon)', async () => {
    const r = await dockerDirect(['info', '--format', '{{.DockerRootDir}}']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(path.join(path.dirname(dockerSock()), 'data'));
  });

  it('has the busybox:local image', async () => {
    const r = await dockerDirect(['image', 'inspect', '--format', '{{.Os}}/{{.Architecture}}', TEST_IMAGE]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toMatch(/^linux\//);
  });

  it('runs `docker run --rm --network none busybox:local echo hi`', async () => {
    const r = await dockerDirect([...RUN, 'echo', 'hi']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('hi\n');
  });

  it('passes stdin to `docker run -i` and ends it at EOF', async () => {
    const r = await dockerDirect(['run', '-i', '--rm', '--network', 'none', ...labelArgs(), TEST_IMAGE, 'wc', '-c'], {
      input: 'x'.repeat(100_000),
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('100000');
  });

  it('gives containers created with --network none no interface but loopback', async () => {
    const r = await dockerDirect([...RUN, 'ls', '/sys/class/net']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split(/\s+/).filter(Boolean)).toEqual(['lo']);
  });

  it('cannot pull from a registry: pulls fail fast instead of leaving the machine', async () => {
    const r = await dockerDirect(['pull', 'busybox:1.36'], { timeoutMs: 30_000 });
    expect(r.timedOut).toBe(false);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/proxyconnect|127\.0\.0\.1:9/);
  });

  describe('busybox:local applets the tests use', () => {
    let binaries: string[] = [];
    beforeAll(async () => {
      const r = await dockerDirect([...RUN, 'ls', '/bin']);
      expect(r.code, r.stderr).toBe(0);
      binaries = r.stdout.split(/\s+/);
    });
    it.each(['sh', 'echo', 'sleep', 'cat', 'true', 'false', 'ls', 'ps', 'head', 'tail', 'wc', 'yes', 'dd', 'env', 'id',
      'seq', 'top', 'printf', 'test', 'grep', 'mkdir', 'rm', 'tar', 'kill', 'touch'])('%s', (applet) => {
      expect(binaries).toContain(applet);
    });
  });

  it('removeTestContainers() removes the containers labelled by this file, running or not', async () => {
    const created = await dockerDirect(['create', '--network', 'none', ...labelArgs(), TEST_IMAGE, 'true']);
    const running = await dockerDirect(['run', '-d', '--network', 'none', ...labelArgs(), TEST_IMAGE, 'sleep', '300']);
    expect(created.code, created.stderr).toBe(0);
    expect(running.code, running.stderr).toBe(0);
    const listed = () => dockerDirect(['ps', '--all', '--quiet', '--no-trunc', '--filter', `label=${TEST_LABEL}`]);
    expect((await listed()).stdout).toContain(created.stdout.trim());

    await removeTestContainers();

    expect((await listed()).stdout.trim()).toBe('');
  });

  it('docker() kills a CLI that outlives its timeout and says so', async () => {
    const r = await dockerDirect([...RUN, 'sleep', '30'], { timeoutMs: 1_500 });
    expect(r).toMatchObject({ timedOut: true, code: null });
    expect(r.stderr).toContain('killed after 1500 ms');
  });
});

// A stand-in for `dockward serve`: it speaks the start-up contract (the "listening" log line,
// SIGTERM) and checks the bearer token of each connection's first request, then relays bytes
// to the daemon. It lets the harness be proven before (and independently of) the real gateway.
const STAND_IN = String.raw`
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
const cfg = fs.readFileSync(process.argv[process.argv.indexOf('--config') + 1], 'utf8');
const upstream = /upstream: unix:\/\/(\S+)/.exec(cfg)[1];
const secret = fs.readFileSync(/secretFile: (\S+)/.exec(cfg)[1], 'utf8');
const mode = process.env.STAND_IN_MODE ?? 'ok';
if (mode === 'crash') { console.error('stand-in: cannot start, bad policy'); process.exit(3); }
if (mode === 'stubborn') process.on('SIGTERM', () => {});
else process.on('SIGTERM', () => process.exit(0));
function valid(token) {
  const [h, p, s] = token.split('.');
  const mac = crypto.createHmac('sha256', secret).update(h + '.' + p).digest('base64url');
  return mac === s && JSON.parse(Buffer.from(p, 'base64url')).exp * 1000 > Date.now();
}
const server = net.createServer({ allowHalfOpen: true }, (client) => {
  client.once('data', (first) => {
    const m = /\r\nauthorization: bearer (\S+)\r\n/i.exec(first.toString('latin1'));
    if (!m || !valid(m[1])) {
      const body = '{"message":"stand-in: no valid token"}';
      client.end('HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: ' + body.length + '\r\nConnection: close\r\n\r\n' + body);
      return;
    }
    const up = net.createConnection({ path: upstream, allowHalfOpen: true });
    up.write(first);
    client.pipe(up);
    up.pipe(client);
    up.on('error', () => client.destroy());
    client.on('error', () => up.destroy());
  });
});
const metrics = http.createServer((req, res) => res.end('stand_in_up 1\n'));
server.listen(0, '127.0.0.1', () => metrics.listen(0, '127.0.0.1', () => {
  console.error(JSON.stringify({ level: 30, msg: 'listening', listen: '127.0.0.1:' + server.address().port, metrics: '127.0.0.1:' + metrics.address().port }));
}));
`;

describeE2E('the e2e harness, with a stand-in gateway', () => {
  let standIn = '';
  beforeAll(async () => {
    standIn = path.join(await scratchDir(), 'stand-in.mjs');
    await writeFile(standIn, STAND_IN);
  });
  const policyYaml = 'rules: []\n';

  it('learns the ports from the "listening" line; the docker CLI reaches the daemon with the minted token', async () => {
    const gw = await startGateway({ policyYaml, main: standIn });
    const r = await gw.dockerAs({ sub: 'alice', groups: ['dev'] }, [...RUN, 'echo', 'through the gateway']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('through the gateway\n');
    const metrics = await fetch(gw.metricsUrl);
    expect(await metrics.text()).toBe('stand_in_up 1\n');
    expect(await gw.stop()).toEqual({ code: 0, signal: null, killed: false });
  });

  it.each<[string, (gw: Gateway) => Promise<DockerResult>]>([
    ['no credentials', (gw) => gw.dockerAs(null, ['ps'])],
    ['an expired token', (gw) => gw.dockerAs({ sub: 'alice', groups: ['dev'], ttl: -60 }, ['ps'])],
    [
      'a token signed with another secret',
      async (gw) => {
        const token = mintToken({ secret: 'not-the-secret', sub: 'alice', groups: ['dev'] });
        const configDir = await writeDockerConfigDir({ HttpHeaders: { Authorization: `Bearer ${token}` } });
        return docker(['ps'], { host: gw.host, configDir });
      },
    ],
  ])('a caller with %s is refused (the token really rides on the request)', async (_name, call) => {
    const gw = await startGateway({ policyYaml, main: standIn });
    const r = await call(gw);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('stand-in: no valid token');
  });

  it('rejects with the gateway stderr when it exits before it is ready', async () => {
    await expect(startGateway({ policyYaml, main: standIn, env: { STAND_IN_MODE: 'crash' } })).rejects.toThrow(
      /exited before it was ready \(code 3[\s\S]*stand-in: cannot start, bad policy/,
    );
  });

  it('stop() SIGKILLs a gateway that ignores SIGTERM', async () => {
    const gw = await startGateway({ policyYaml, main: standIn, env: { STAND_IN_MODE: 'stubborn' } });
    expect(await gw.stop(500)).toEqual({ code: null, signal: 'SIGKILL', killed: true });
    expect(gw.running()).toBe(false);
  });

  it('writes the config the gateway reads: loopback listeners, the test socket upstream, HS256 secret file', async () => {
    const gw = await startGateway({ policyYaml, main: standIn, config: { limits: { inspectedBodyBytes: 4096 } } });
    const written: unknown = parse(await readFile(gw.configFile, 'utf8'));
    expect(written).toEqual({
      listen: '127.0.0.1:0',
      upstream: `unix://${dockerSock()}`,
      auth: { jwt: { algorithms: ['HS256'], secretFile: gw.secretFile } },
      policies: [gw.policyFile],
      metrics: { listen: '127.0.0.1:0' },
      audit: { file: gw.auditFile },
      limits: { inspectedBodyBytes: 4096 },
    });
    expect(await readFile(gw.secretFile, 'utf8')).toMatch(/^[0-9a-f]{96}$/);
  });
});

describeE2E('the e2e harness, with the real `dockward serve`', () => {
  it('starts it from dist/, learns its ports, and the docker CLI gets the daemon\'s answer through it', async () => {
    const gw = await startGateway({
      policyYaml: 'rules:\n  - name: ping-and-version\n    effect: allow\n    subjects: ["*"]\n    actions: [system.ping.head, system.ping, system.version]\n',
    });
    const direct = await dockerDirect(['version', '--format', '{{.Server.APIVersion}}']);
    const through = await gw.dockerAs({ sub: 'alice', groups: ['dev'] }, ['version', '--format', '{{.Server.APIVersion}}']);
    expect(through.code, through.stderr).toBe(0);
    expect(through.stdout).toBe(direct.stdout);
    expect((await fetch(gw.metricsUrl)).status).toBe(200);
    expect(await gw.stop()).toMatchObject({ killed: false });
  });
});

describe('mergeConfig', () => {
  it.each([
    ['adds a key', { a: 1 }, { b: 2 }, { a: 1, b: 2 }],
    ['merges nested objects', { auth: { jwt: { x: 1, y: 2 } } }, { auth: { jwt: { y: 3 } } }, { auth: { jwt: { x: 1, y: 3 } } }],
    ['replaces arrays', { policies: ['a', 'b'] }, { policies: ['c'] }, { policies: ['c'] }],
    ['removes a key set to undefined', { metrics: { listen: 'x' }, a: 1 }, { metrics: undefined }, { a: 1 }],
  ])('%s', (_name, base, over, expected) => {
    expect(mergeConfig(base, over)).toEqual(expected);
  });
});
