/**
 * Every call of the original brief (issue 2, "How it is proven") through the real `dockward serve`,
 * driven by the real docker CLI and, where the CLI cannot make the exact call, by dockerode:
 * `/version`, `/containers/json` with `all`, `limit`, `since`, `before`, `size`, `filters`,
 * `containers/create` with the brief's example body, inspect, `top`, `export`,
 * `images/create?fromSrc=-`, `images/json`, `images/{name}/json`, `start`, `stop`,
 * `restart?t=5` and `kill`.
 *
 * Each call works for a caller whose policy allows it and is refused with 403 naming the rule for
 * one whose policy does not; a refused call leaves no trace on the daemon (checked with
 * dockerDirect, straight at the daemon). Missing, expired and foreign tokens get 401.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  describeE2E,
  docker,
  dockerDirect,
  dockerSock,
  labelArgs,
  mintToken,
  RUN_ID,
  scratchDir,
  startGateway,
  TEST_IMAGE,
  TEST_LABEL,
  TEST_LABEL_KEY,
  uniqueName,
  writeDockerConfigDir,
  type DockerResult,
  type Gateway,
  type Identity,
} from './harness.js';

const run = promisify(execFile);

const OPERATOR: Identity = { sub: 'olivia', groups: ['operators'] };
const OUTSIDER: Identity = { sub: 'mallory', groups: ['outsiders'] };
/** In no group that any rule names: only the default deny speaks to her. */
const VISITOR: Identity = { sub: 'vera', groups: [] };

const BRIEF_ACTIONS = [
  'system.version', 'container.list', 'container.create', 'container.inspect', 'container.top',
  'container.export', 'image.create', 'image.list', 'image.inspect', 'container.start',
  'container.stop', 'container.restart', 'container.kill',
];

const POLICY = `
rules:
  - name: everyone-pings
    effect: allow
    subjects: ["*"]
    actions: [system.ping.head, system.ping]
  - name: operators-run-the-brief
    effect: allow
    subjects: ["group:operators"]
    # container.restart is not here: only operators-restart-gently allows it, with a bound.
    actions: [${BRIEF_ACTIONS.filter((a) => a !== 'container.restart').join(', ')}, container.wait, container.logs, container.attach]
  - name: operators-restart-gently
    effect: allow
    subjects: ["group:operators"]
    actions: [container.restart]
    when:
      query.t: { lte: 10 }
  - name: outsiders-get-nothing
    effect: deny
    subjects: ["group:outsiders"]
    actions: [system.version, "container.*", "image.*"]
`;

const WORKER_CMD = ['sh', '-c', 'trap "exit 0" TERM; while :; do sleep 1; done'];

/**
 * The example body of `POST /containers/create` in shared/docker-api/v1.20.md, verbatim in the
 * fixture, with the few changes this daemon needs; each says why.
 */
function briefCreateBody(refs: { scratch: string; parent: string; other: string; redis3: string }): Record<string, unknown> {
  const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'brief-create-body.json');
  const body = JSON.parse(readFileSync(fixture, 'utf8')) as Record<string, unknown> & { HostConfig: Record<string, unknown> };
  // The test daemon cannot pull: the image it has.
  body.Image = TEST_IMAGE;
  // removeTestContainers() finds containers by this label.
  body.Labels = { ...(body.Labels as Record<string, string>), [TEST_LABEL_KEY]: RUN_ID };
  const hc = body.HostConfig;
  // The test daemon runs with --bridge=none, and tests never touch a network.
  hc.NetworkMode = 'none';
  // A scratch directory, not the host's /tmp: a test has no business exposing it to a container.
  hc.Binds = [`${refs.scratch}:/tmp`];
  // dockerd refuses links and volumes-from naming containers that do not exist: ones this test made.
  hc.Links = [`${refs.redis3}:redis`];
  hc.VolumesFrom = [refs.parent, `${refs.other}:ro`];
  // A machine with one memory node refuses "0,1"; one with one CPU refuses CPU 1.
  hc.CpusetMems = '0';
  hc.CpusetCpus = os.cpus().length >= 2 ? '0,1' : '0';
  // busybox:local has no /etc/group, so a group name cannot be resolved at start: a gid.
  hc.GroupAdd = ['4242'];
  // runc refuses the example's unnamed ulimit `{}` at start.
  hc.Ulimits = [{ Name: 'nofile', Soft: 1024, Hard: 2048 }];
  return body;
}

// ---------------------------------------------------------------------------------------------
// Helpers

function client(gw: Gateway, who: Identity): Docker {
  return new Docker({
    host: '127.0.0.1',
    port: gw.port,
    protocol: 'http',
    version: 'v1.41',
    headers: { Authorization: `Bearer ${gw.token(who.sub, who.groups)}` },
  });
}

/** What dockerode throws for a non-2xx answer. */
interface ModemError {
  statusCode?: number;
  json?: { message?: string } | null;
  message: string;
}

async function refusal(p: Promise<unknown>): Promise<{ status: number | undefined; message: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as ModemError;
    return { status: err.statusCode, message: err.json?.message ?? err.message };
  }
  throw new Error('the call succeeded; it should have been refused');
}

function expectOk(r: DockerResult): void {
  expect(r.code, `${r.command}\n${r.stderr}`).toBe(0);
}

/** The docker CLI's rendering of a 403 from the named rule. */
function expectDeniedByCli(r: DockerResult, rule: string, why: string): void {
  expect(r.code, `${r.command} should fail\n${r.stdout}`).not.toBe(0);
  expect(r.stderr).toContain(`Error response from daemon: dockward: denied by rule ${rule}: ${why}`);
}

interface Inspected {
  Id: string;
  State: { Status: string; Running: boolean; StartedAt: string; ExitCode: number };
  Config: { Env: string[] } & Record<string, unknown>;
  HostConfig: Record<string, unknown>;
}

async function directInspect(nameOrId: string): Promise<Inspected> {
  const r = await dockerDirect(['container', 'inspect', nameOrId]);
  expectOk(r);
  return (JSON.parse(r.stdout) as Inspected[])[0]!;
}

/**
 * POST /containers/create with exactly `body`. dockerode would also copy the options into the
 * query string; `_query`/`_body` (docker-modem) keep the name in the query and the body as given.
 */
function createWithBody(d: Docker, name: string, body: Record<string, unknown>): Promise<Docker.Container> {
  return d.createContainer({ _query: { name }, _body: body } as unknown as Docker.ContainerCreateOptions);
}

async function containerExists(name: string): Promise<boolean> {
  const r = await dockerDirect(['ps', '--all', '--quiet', '--filter', `name=^/${name}$`]);
  expectOk(r);
  return r.stdout.trim() !== '';
}

async function imageExists(ref: string): Promise<boolean> {
  const r = await dockerDirect(['image', 'inspect', ref]);
  return r.code === 0;
}

async function tarEntries(file: string): Promise<string[]> {
  const { stdout } = await run('tar', ['-tf', file], { maxBuffer: 64 * 1024 * 1024 });
  return stdout.split('\n').filter(Boolean);
}

async function waitForStatus(name: string, status: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = (await directInspect(name)).State.Status;
    if (s === status) return;
    if (Date.now() > deadline) throw new Error(`${name} is ${s}, not ${status}, after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// ---------------------------------------------------------------------------------------------

describeE2E('the brief, through dockward with the real docker CLI', () => {
  let gw: Gateway;
  let scratch: string;
  const importedImage = `dockward-e2e-brief-${RUN_ID}:imported`;
  const refusedImage = `dockward-e2e-brief-${RUN_ID}:refused`;
  const refs = { parent: uniqueName('parent'), other: uniqueName('other'), redis3: uniqueName('redis3') };
  /** The container made from the brief's body, by the operator. */
  const briefName = uniqueName('brief');
  /** Made by the operator with `docker create`, then started, stopped, restarted and killed. */
  const workerName = uniqueName('worker');
  /** Running, made directly: what the outsider must not be able to touch. */
  const victimName = uniqueName('victim');
  /** Created, never started, made directly. */
  const dormantName = uniqueName('dormant');
  let exportTar: string;

  const asOperator = (args: string[], input?: string | Buffer) => gw.dockerAs(OPERATOR, args, { input });
  const asOutsider = (args: string[], input?: string | Buffer) => gw.dockerAs(OUTSIDER, args, { input });

  beforeAll(async () => {
    gw = await startGateway({ policyYaml: POLICY });
    scratch = await scratchDir();
    exportTar = path.join(scratch, 'brief-export.tar');
    const setup = await Promise.all([
      dockerDirect(['create', '--name', refs.parent, '--network', 'none', '-v', '/parent-data', ...labelArgs(), TEST_IMAGE, 'true']),
      dockerDirect(['create', '--name', refs.other, '--network', 'none', ...labelArgs(), TEST_IMAGE, 'true']),
      dockerDirect(['create', '--name', refs.redis3, '--network', 'none', ...labelArgs(), TEST_IMAGE, 'true']),
      dockerDirect(['run', '-d', '--name', victimName, '--network', 'none', ...labelArgs(), TEST_IMAGE, ...WORKER_CMD]),
      dockerDirect(['create', '--name', dormantName, '--network', 'none', ...labelArgs(), TEST_IMAGE, ...WORKER_CMD]),
    ]);
    for (const r of setup) expectOk(r);
  });

  afterAll(async () => {
    // Containers go with describeE2E's cleanup; images are this file's to remove.
    await dockerDirect(['image', 'rm', '--force', importedImage, refusedImage]);
  });

  // -------------------------------------------------------------------------------------------
  // Allowed: the operator makes every call of the brief. The tests build on each other (create,
  // then start, ...), in file order.

  it('GET /version answers with the daemon\'s version', async () => {
    const direct = await dockerDirect(['version', '--format', '{{.Server.Version}} {{.Server.APIVersion}}']);
    const through = await asOperator(['version', '--format', '{{.Server.Version}} {{.Server.APIVersion}}']);
    expectOk(through);
    expect(through.stdout).toBe(direct.stdout);
  });

  it('POST /containers/create with the brief\'s example body creates that container', async () => {
    const body = briefCreateBody({ scratch, ...refs });
    const created = await createWithBody(client(gw, OPERATOR), briefName, body);
    expect(created.id).toMatch(/^[0-9a-f]{64}$/);

    const c = await directInspect(briefName);
    expect(c.Id).toBe(created.id);
    expect(c.Config).toMatchObject({
      Image: TEST_IMAGE,
      Cmd: ['date'],
      Labels: { 'com.example.vendor': 'Acme', 'com.example.license': 'GPL', 'com.example.version': '1.0' },
      ExposedPorts: { '22/tcp': {} },
    });
    expect(c.Config.Env).toEqual(expect.arrayContaining(['FOO=bar', 'BAZ=quux']));
    expect(c.HostConfig).toMatchObject({
      NetworkMode: 'none',
      Binds: [`${scratch}:/tmp`],
      CpuShares: 512,
      CpuPeriod: 100000,
      CpuQuota: 50000,
      CapAdd: ['NET_ADMIN'],
      CapDrop: ['MKNOD'],
      VolumesFrom: [refs.parent, `${refs.other}:ro`],
      PortBindings: { '22/tcp': [{ HostIp: '', HostPort: '11022' }] },
      Dns: ['8.8.8.8'],
    });
  });

  it('GET /containers/{id}/json (docker inspect) shows the created container', async () => {
    const r = await asOperator(['container', 'inspect', '--format', '{{.Name}} {{.Config.Image}} {{.HostConfig.NetworkMode}} {{index .Config.Labels "com.example.vendor"}}', briefName]);
    expectOk(r);
    expect(r.stdout.trim()).toBe(`/${briefName} ${TEST_IMAGE} none Acme`);
  });

  it('POST /containers/{id}/start runs the brief\'s container (`date`) to a clean exit', async () => {
    expectOk(await asOperator(['start', briefName]));
    const waited = await asOperator(['wait', briefName]);
    expectOk(waited);
    expect(waited.stdout.trim()).toBe('0');
    const logs = await asOperator(['logs', briefName]);
    expectOk(logs);
    // busybox date: "Sat Nov 28 16:06:40 UTC 2026"
    expect(logs.stdout).toMatch(/^\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \w+ \d{4}\n$/);
  });

  it('GET /containers/{id}/export writes a tar of the container\'s file system', async () => {
    const r = await asOperator(['export', '--output', exportTar, briefName]);
    expectOk(r);
    const entries = await tarEntries(exportTar);
    expect(entries).toContain('bin/busybox');
    expect(entries).toContain('bin/sh');
  });

  it('POST /images/create?fromSrc=- (docker import) makes an image of that tar, which runs', async () => {
    const r = await asOperator(['import', '-', importedImage], readFileSync(exportTar));
    expectOk(r);
    expect(r.stdout.trim()).toMatch(/^sha256:[0-9a-f]{64}$/);
    const ran = await dockerDirect(['run', '--rm', '--network', 'none', ...labelArgs(), importedImage, 'echo', 'imported and running']);
    expectOk(ran);
    expect(ran.stdout).toBe('imported and running\n');
  });

  it('GET /images/json lists the imported image', async () => {
    const r = await asOperator(['images', '--format', '{{.Repository}}:{{.Tag}}']);
    expectOk(r);
    expect(r.stdout.split('\n')).toEqual(expect.arrayContaining([importedImage, TEST_IMAGE]));
  });

  it('GET /images/{name}/json shows the imported image', async () => {
    const direct = await dockerDirect(['image', 'inspect', '--format', '{{.Id}}', importedImage]);
    const r = await asOperator(['image', 'inspect', '--format', '{{.Id}} {{json .RepoTags}}', importedImage]);
    expectOk(r);
    expect(r.stdout.trim()).toBe(`${direct.stdout.trim()} ${JSON.stringify([importedImage])}`);
  });

  it('docker create (the CLI\'s own create body) makes the worker', async () => {
    const r = await asOperator(['create', '--name', workerName, '--network', 'none', ...labelArgs(), TEST_IMAGE, ...WORKER_CMD]);
    expectOk(r);
    expect((await directInspect(workerName)).State.Status).toBe('created');
  });

  it('POST /containers/{id}/start starts the worker', async () => {
    expectOk(await asOperator(['start', workerName]));
    expect((await directInspect(workerName)).State.Running).toBe(true);
  });

  it('GET /containers/{id}/top lists its processes', async () => {
    const r = await asOperator(['top', workerName]);
    expectOk(r);
    expect(r.stdout).toMatch(/^UID +PID +PPID/);
    expect(r.stdout).toContain('while :; do sleep 1; done');
  });

  it('POST /containers/{id}/stop stops it', async () => {
    expectOk(await asOperator(['stop', workerName]));
    const s = (await directInspect(workerName)).State;
    // The trap turns TERM into `exit 0`: a graceful stop, not a kill after the timeout.
    expect(s).toMatchObject({ Running: false, ExitCode: 0 });
  });

  it('POST /containers/{id}/restart?t=5 (docker restart -t 5) restarts it', async () => {
    expectOk(await asOperator(['start', workerName]));
    const before = (await directInspect(workerName)).State.StartedAt;
    expectOk(await asOperator(['restart', '--time', '5', workerName]));
    const after = (await directInspect(workerName)).State;
    expect(after.Running).toBe(true);
    expect(after.StartedAt).not.toBe(before);
  });

  it('POST /containers/{id}/restart?t=60 is refused: operators-restart-gently allows t <= 10 only', async () => {
    const before = (await directInspect(workerName)).State.StartedAt;
    const r = await asOperator(['restart', '--time', '60', workerName]);
    expectDeniedByCli(r, 'default-deny', 'rule operators-restart-gently needs query.t <= 10, request has "60"');
    expect((await directInspect(workerName)).State).toMatchObject({ Running: true, StartedAt: before });
  });

  it('POST /containers/{id}/kill kills it', async () => {
    expectOk(await asOperator(['kill', workerName]));
    await waitForStatus(workerName, 'exited');
    expect((await directInspect(workerName)).State.ExitCode).toBe(137);
  });

  // interface.md names dockerode as a supported caller. docker-modem sends the options of a
  // POST twice: in the query string, which dockerd reads, and as a JSON body, which these
  // routes of dockerd ignore.
  it.each<[string, (c: Docker.Container) => Promise<unknown>, (s: Inspected['State'], before: Inspected['State']) => void]>([
    [
      'restart({ t: 5 })',
      (c) => c.restart({ t: 5 }),
      (s, before) => {
        expect(s.Running).toBe(true);
        expect(s.StartedAt).not.toBe(before.StartedAt);
      },
    ],
    ['stop({ t: 5 })', (c) => c.stop({ t: 5 }), (s) => expect(s).toMatchObject({ Running: false, ExitCode: 0 })],
    ['kill({ signal: "KILL" })', (c) => c.kill({ signal: 'KILL' }), (s) => expect(s).toMatchObject({ Running: false, ExitCode: 137 })],
    [
      'attach({ stream, stdout, stderr })',
      // The hijacked stream is a net.Socket at run time; the types say ReadWriteStream.
      async (c) => ((await c.attach({ stream: true, stdout: true, stderr: true })) as unknown as { destroy(): void }).destroy(),
      (s) => expect(s.Running).toBe(true),
    ],
  ])('dockerode\'s %s works through the gateway', async (_name, call, check) => {
    const name = uniqueName('dockerode');
    expectOk(await dockerDirect(['run', '-d', '--name', name, '--network', 'none', ...labelArgs(), TEST_IMAGE, ...WORKER_CMD]));
    const before = (await directInspect(name)).State;
    await call(client(gw, OPERATOR).getContainer(name));
    if (!(await directInspect(name)).State.Running) await waitForStatus(name, 'exited');
    check((await directInspect(name)).State, before);
  });

  // The list queries of the brief. Containers of other test files come and go on the same
  // daemon: every query is scoped by this file's label.
  describe('GET /containers/json', () => {
    const listNames = [uniqueName('list-a'), uniqueName('list-b'), uniqueName('list-c')];
    const byLabel = { label: [TEST_LABEL] };
    const ids: Record<string, string> = {};
    const nameOf = (c: Docker.ContainerInfo) => c.Names[0]!.slice(1);

    it('GET /containers/json?all=1&limit=1 returns one container, the newest', async () => {
      // Made in order a, b, c, one at a time: created timestamps order them.
      for (const [i, name] of listNames.entries()) {
        const r = await dockerDirect(['create', '--name', name, '--network', 'none', ...labelArgs(), '--label', `list-member=${i}`, ...(i === 0 ? ['--label', 'list-first=yes'] : []), TEST_IMAGE, 'true']);
        expectOk(r);
        ids[name] = r.stdout.trim();
      }
      const list = await client(gw, OPERATOR).listContainers({ all: true, limit: 1, filters: { label: [TEST_LABEL, 'list-member'] } });
      expect(list.map(nameOf)).toEqual([listNames[2]]);
    });

    it('GET /containers/json?all=1 without a limit returns them all', async () => {
      const list = await client(gw, OPERATOR).listContainers({ all: true, filters: { label: [TEST_LABEL, 'list-member'] } });
      expect(list.map(nameOf)).toEqual([...listNames].reverse());
    });

    it('GET /containers/json without all=1 leaves out containers that are not running', async () => {
      const list = await client(gw, OPERATOR).listContainers({ filters: byLabel });
      expect(list.map(nameOf)).not.toContain(listNames[0]);
      expect(list.map(nameOf)).toContain(victimName);
    });

    it('GET /containers/json?filters={"label":[...]} returns only the labelled container', async () => {
      const list = await client(gw, OPERATOR).listContainers({ all: true, filters: { label: [TEST_LABEL, 'list-first=yes'] } });
      expect(list.map(nameOf)).toEqual([listNames[0]]);
    });

    it('GET /containers/json?filters={"since":[a]} returns the ones created after a', async () => {
      const list = await client(gw, OPERATOR).listContainers({ all: true, filters: { since: [ids[listNames[0]!]!], label: [TEST_LABEL, 'list-member'] } });
      expect(list.map(nameOf)).toEqual([listNames[2], listNames[1]]);
    });

    it('GET /containers/json?filters={"before":[c]} returns the ones created before c', async () => {
      const list = await client(gw, OPERATOR).listContainers({ all: true, filters: { before: [listNames[2]!], label: [TEST_LABEL, 'list-member'] } });
      expect(list.map(nameOf)).toEqual([listNames[1], listNames[0]]);
    });

    it('docker ps --filter since=/before= (how the CLI sends them) agree', async () => {
      const r = await asOperator(['ps', '--all', '--format', '{{.Names}}', '--filter', `label=${TEST_LABEL}`, '--filter', 'label=list-member', '--filter', `since=${listNames[0]}`, '--filter', `before=${listNames[2]}`]);
      expectOk(r);
      expect(r.stdout.trim()).toBe(listNames[1]);
    });

    it('GET /containers/json?all=1&since=..&before=.. (the v1.20 query parameters) gets the daemon\'s own answer', async () => {
      // dockerd 20.10 no longer reads these two parameters (the filters above replaced them);
      // the gateway's job is to pass them on untouched, so the daemon is the oracle.
      const query = { all: true, since: ids[listNames[0]!]!, before: ids[listNames[2]!]!, filters: { label: [TEST_LABEL, 'list-member'] } };
      const through = await client(gw, OPERATOR).listContainers(query);
      const direct = await new Docker({ socketPath: dockerSock(), version: 'v1.41' }).listContainers(query);
      expect(through.map(nameOf)).toEqual(direct.map(nameOf));
      expect(through.length).toBeGreaterThan(0);
    });

    it('GET /containers/json?all=1&size=1 adds the sizes', async () => {
      // SizeRootFs is in the answer with size=1 only (the dockerode types leave it out).
      type Sized = Docker.ContainerInfo & { SizeRootFs?: number };
      const [withSize] = (await client(gw, OPERATOR).listContainers({ all: true, size: true, limit: 1, filters: { label: [TEST_LABEL, 'list-member'] } })) as Sized[];
      const [withoutSize] = (await client(gw, OPERATOR).listContainers({ all: true, limit: 1, filters: { label: [TEST_LABEL, 'list-member'] } })) as Sized[];
      expect(withSize?.SizeRootFs).toBeGreaterThan(0);
      expect(withoutSize?.SizeRootFs).toBeUndefined();
    });

    it('docker ps -a --last 1 -s (the CLI\'s limit and size) agrees with the daemon', async () => {
      const args = ['ps', '--all', '--last', '1', '--size', '--format', '{{.Names}} {{.Size}}', '--filter', `label=${TEST_LABEL}`, '--filter', 'label=list-member'];
      const through = await asOperator(args);
      expectOk(through);
      expect(through.stdout).toBe((await dockerDirect(args)).stdout);
      expect(through.stdout.startsWith(`${listNames[2]} `)).toBe(true);
    });
  });

  // -------------------------------------------------------------------------------------------
  // Refused: the outsider makes the same calls; outsiders-get-nothing names each one, and the
  // daemon shows no trace of any of them.

  interface RefusedRow {
    action: string;
    /** Makes the call as OUTSIDER; returns what to check afterwards. */
    call: () => Promise<DockerResult | { status: number | undefined; message: string }>;
    /** The daemon's state shows the call did nothing. */
    noTrace?: () => Promise<void>;
  }

  const refusedName = uniqueName('refused');
  const refusedExport = () => path.join(scratch, 'refused-export.tar');

  const refusedRows: [string, RefusedRow][] = [
    ['GET /version (docker version)', { action: 'system.version', call: () => asOutsider(['version']) }],
    ['GET /containers/json (docker ps -a --last 1 -s)', { action: 'container.list', call: () => asOutsider(['ps', '--all', '--last', '1', '--size']) }],
    [
      'GET /containers/json?all=1&limit&size&filters (dockerode)',
      { action: 'container.list', call: () => refusal(client(gw, OUTSIDER).listContainers({ all: true, limit: 1, size: true, filters: { label: [TEST_LABEL] } })) },
    ],
    [
      'POST /containers/create with the brief\'s body (dockerode)',
      {
        action: 'container.create',
        call: () => refusal(createWithBody(client(gw, OUTSIDER), refusedName, briefCreateBody({ scratch, ...refs }))),
        noTrace: async () => expect(await containerExists(refusedName)).toBe(false),
      },
    ],
    [
      'POST /containers/create (docker create)',
      {
        action: 'container.create',
        call: () => asOutsider(['create', '--name', refusedName, '--network', 'none', ...labelArgs(), TEST_IMAGE, 'true']),
        noTrace: async () => expect(await containerExists(refusedName)).toBe(false),
      },
    ],
    ['GET /containers/{id}/json (docker container inspect)', { action: 'container.inspect', call: () => asOutsider(['container', 'inspect', victimName]) }],
    ['GET /containers/{id}/top (docker top)', { action: 'container.top', call: () => asOutsider(['top', victimName]) }],
    [
      'GET /containers/{id}/export (docker export)',
      {
        action: 'container.export',
        call: () => asOutsider(['export', '--output', refusedExport(), victimName]),
        noTrace: async () => expect(existsSync(refusedExport())).toBe(false),
      },
    ],
    [
      'POST /images/create?fromSrc=- (docker import)',
      {
        action: 'image.create',
        // The refusal arrives while the CLI is still uploading the tar. Whether the CLI shows it
        // or a write error ("broken pipe") is a race, so one attempt proves little: every one of
        // twenty must show the refusal.
        call: async () => {
          const tar = readFileSync(exportTar);
          let last: DockerResult | undefined;
          for (let i = 0; i < 20; i++) {
            last = await asOutsider(['import', '-', refusedImage], tar);
            if (!last.stderr.includes('dockward: denied by rule')) return last;
          }
          return last!;
        },
        noTrace: async () => expect(await imageExists(refusedImage)).toBe(false),
      },
    ],
    ['GET /images/json (docker images)', { action: 'image.list', call: () => asOutsider(['images']) }],
    ['GET /images/{name}/json (docker image inspect)', { action: 'image.inspect', call: () => asOutsider(['image', 'inspect', TEST_IMAGE]) }],
    [
      'POST /containers/{id}/start (docker start)',
      {
        action: 'container.start',
        call: () => asOutsider(['start', dormantName]),
        noTrace: async () => expect((await directInspect(dormantName)).State.Status).toBe('created'),
      },
    ],
    [
      'POST /containers/{id}/stop (docker stop)',
      {
        action: 'container.stop',
        call: () => asOutsider(['stop', victimName]),
        noTrace: async () => expect((await directInspect(victimName)).State.Running).toBe(true),
      },
    ],
    [
      'POST /containers/{id}/restart?t=5 (docker restart -t 5)',
      {
        action: 'container.restart',
        call: () => asOutsider(['restart', '--time', '5', victimName]),
        noTrace: async () => expect((await directInspect(victimName)).State).toMatchObject({ Running: true, StartedAt: victimStartedAt }),
      },
    ],
    [
      'POST /containers/{id}/kill (docker kill)',
      {
        action: 'container.kill',
        call: () => asOutsider(['kill', victimName]),
        noTrace: async () => expect((await directInspect(victimName)).State).toMatchObject({ Running: true, StartedAt: victimStartedAt }),
      },
    ],
  ];

  let victimStartedAt = '';

  it('(the outsider\'s rows cover every call of the brief)', async () => {
    expect(new Set(refusedRows.map(([, row]) => row.action))).toEqual(new Set(BRIEF_ACTIONS));
    const v = await directInspect(victimName);
    expect(v.State.Running).toBe(true);
    victimStartedAt = v.State.StartedAt;
  });

  it.each(refusedRows)('refused to the outsider, 403 naming the rule, no trace: %s', async (_name, row) => {
    const r = await row.call();
    const why = `${row.action} is denied to user:${OUTSIDER.sub}`;
    if ('command' in r) expectDeniedByCli(r, 'outsiders-get-nothing', why);
    else expect(r).toEqual({ status: 403, message: `dockward: denied by rule outsiders-get-nothing: ${why}` });
    await row.noTrace?.();
  });

  it('the audit log holds one deny record per refused call, naming rule, action and caller', async () => {
    const denials = (await gw.audit()).filter(
      (a) => a.decision === 'deny' && (a.subject as { user?: string } | null)?.user === OUTSIDER.sub,
    );
    expect(new Set(denials.map((a) => a.action))).toEqual(new Set(BRIEF_ACTIONS));
    for (const a of denials) expect(a).toMatchObject({ rule: 'outsiders-get-nothing', status: 403 });
  });

  it.each<[string, string[], string]>([
    ['docker ps', ['ps'], 'container.list'],
    ['docker create', ['create', '--network', 'none', ...labelArgs(), TEST_IMAGE, 'true'], 'container.create'],
    ['docker kill', ['kill', victimName], 'container.kill'],
  ])('a caller no rule speaks for is refused by default-deny: %s', async (_name, args, action) => {
    const before = await dockerDirect(['ps', '--all', '--quiet', '--filter', `label=${TEST_LABEL}`]);
    const r = await gw.dockerAs(VISITOR, args);
    expectDeniedByCli(r, 'default-deny', `no rule allows ${action} for user:${VISITOR.sub}`);
    const after = await dockerDirect(['ps', '--all', '--quiet', '--filter', `label=${TEST_LABEL}`]);
    expect(after.stdout).toBe(before.stdout);
    expect((await directInspect(victimName)).State.Running).toBe(true);
  });

  // -------------------------------------------------------------------------------------------
  // Not authenticated: 401 before any policy is consulted.

  const unauthenticatedRows: [string, (gw: Gateway) => Promise<string>, string][] = [
    ['no credentials at all', async () => (await writeDockerConfigDir({})), 'dockward: authentication required: send Authorization: Bearer <token>'],
    [
      'an expired token',
      async (g) => writeDockerConfigDir({ HttpHeaders: { Authorization: `Bearer ${g.token(OPERATOR.sub, OPERATOR.groups, -60)}` } }),
      'dockward: invalid token: token expired',
    ],
    [
      'a token signed with another secret',
      async () => writeDockerConfigDir({ HttpHeaders: { Authorization: `Bearer ${mintToken({ secret: 'not-the-gateway-secret-'.repeat(3), ...OPERATOR })}` } }),
      'dockward: invalid token: token signature does not verify',
    ],
    ['a header that is not a bearer token', async () => writeDockerConfigDir({ HttpHeaders: { Authorization: 'Basic b2xpdmlhOnB3' } }), 'dockward: malformed Authorization header'],
  ];

  it.each(unauthenticatedRows)('401 for %s: the CLI shows why, and a create leaves no container', async (_name, configFor, message) => {
    const configDir = await configFor(gw);
    const ps = await docker(['ps'], { host: gw.host, configDir });
    expect(ps.code).not.toBe(0);
    expect(ps.stderr).toContain(`Error response from daemon: ${message}`);

    const name = uniqueName('unauthenticated');
    const create = await docker(['create', '--name', name, '--network', 'none', ...labelArgs(), TEST_IMAGE, 'true'], { host: gw.host, configDir });
    expect(create.code).not.toBe(0);
    expect(create.stderr).toContain(message);
    expect(await containerExists(name)).toBe(false);
  });

  it.each<[string, Record<string, string>, RegExp]>([
    ['no credentials', {}, /^dockward: authentication required/],
    ['an expired token', { expired: 'yes' }, /^dockward: invalid token: token expired$/],
  ])('401 with WWW-Authenticate: Bearer and Docker\'s error shape for %s', async (_name, h, message) => {
    const headers: Record<string, string> = h.expired ? { Authorization: `Bearer ${gw.token(OPERATOR.sub, OPERATOR.groups, -60)}` } : {};
    const res = await fetch(`${gw.url}/v1.41/containers/json?all=1`, { headers });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await res.json()) as { message: string };
    expect(Object.keys(body)).toEqual(['message']);
    expect(body.message).toMatch(message);
  });

  it('an expired token is refused for saying so, and a fresh one for the same caller works', async () => {
    const expired = await gw.dockerAs({ ...OPERATOR, ttl: -60 }, ['ps']);
    expect(expired.stderr).toContain('dockward: invalid token: token expired');
    expectOk(await gw.dockerAs(OPERATOR, ['ps']));
  });
});
