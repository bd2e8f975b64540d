/**
 * policies/examples/ci-runner.yaml end to end: the real docker CLI through `dockward serve` to
 * the private dockerd. Every way out onto the host that the policy closes is tried with the
 * CLI flag a CI job would use; each is refused with a message naming the rule and the
 * condition, and leaves nothing behind on the daemon. Benign runs work.
 *
 * The policy's /srv/ci is replaced by a scratch directory, so that the allowed bind mounts
 * do not create directories on the test machine.
 */
import { mkdir, readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  describeE2E,
  dockerDirect,
  labelArgs,
  REPO_ROOT,
  scratchDir,
  startGateway,
  TEST_IMAGE,
  TEST_LABEL,
  uniqueName,
  type Gateway,
} from './harness.js';

const CI = { sub: 'runner', groups: ['ci'] };
const CREATE_RULE = 'ci-creates-confined-containers';

describeE2E('policies/examples/ci-runner.yaml with the docker CLI', () => {
  let gw: Gateway;
  let ciRoot: string;

  beforeAll(async () => {
    ciRoot = path.join(await scratchDir(), 'srv-ci');
    await mkdir(path.join(ciRoot, 'work'), { recursive: true });
    const policy = await readFile(path.join(REPO_ROOT, 'policies/examples/ci-runner.yaml'), 'utf8');
    expect(policy).toContain('/srv/ci');
    gw = await startGateway({ policyYaml: policy.replaceAll('/srv/ci', ciRoot) });
  });

  /** Runs `docker run --rm ... busybox:local <cmd>` through the gateway as the CI runner. */
  const run = (flags: string[], cmd: string[] = ['true'], image = TEST_IMAGE) =>
    gw.dockerAs(CI, ['run', '--rm', ...flags, ...labelArgs(), image, ...cmd]);

  async function containersLabelled(label: string): Promise<string[]> {
    const ps = await dockerDirect(['ps', '--all', '--quiet', '--filter', `label=${label}`]);
    expect(ps.code, ps.stderr).toBe(0);
    return ps.stdout.split('\n').filter(Boolean);
  }

  it('runs a benign container', async () => {
    const r = await run(['--network', 'none'], ['echo', 'benign']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('benign\n');
  });

  it('runs a container that binds a directory under the CI root and a named volume', async () => {
    const vol = uniqueName('civol');
    const r = await run(['--network', 'none', '-v', `${ciRoot}/work:/work`, '-v', `${vol}:/cache`, '--cap-add', 'chown'], ['sh', '-c', 'echo from-ci > /work/out && ls /cache']);
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(path.join(ciRoot, 'work', 'out'), 'utf8')).toBe('from-ci\n');
    await dockerDirect(['volume', 'rm', vol]);
  });

  // Each row trips exactly one condition of the create rule; the CLI prints the daemon-style error.
  it.each([
    ['--privileged', ['--network', 'none', '--privileged'], 'create.privileged == false, request has true'],
    ['-v /:/host', ['--network', 'none', '-v', '/:/host'], 'create.hostPaths each under'],
    ['-v escaping the CI root with ..', ['--network', 'none', '-v', '{ci}/../../../../etc:/x'], 'create.hostPaths each under'],
    ['--mount type=bind of the docker socket', ['--network', 'none', '--mount', 'type=bind,src=/var/run,dst=/x'], 'create.hostPaths each under'],
    ['--mount of a volume whose driver options bind /etc', ['--network', 'none', '--mount', 'type=volume,src={vol},dst=/x,volume-driver=local,volume-opt=type=none,volume-opt=o=bind,volume-opt=device=/etc'], 'create.hostPaths each under'],
    ['--pid host', ['--network', 'none', '--pid', 'host'], 'create.hostNamespaces absent, request has ["pid"]'],
    ['--network host', ['--network', 'host'], 'create.hostNamespaces absent, request has ["network"]'],
    ['--ipc host', ['--network', 'none', '--ipc', 'host'], 'create.hostNamespaces absent, request has ["ipc"]'],
    ['--uts host', ['--network', 'none', '--uts', 'host'], 'create.hostNamespaces absent, request has ["uts"]'],
    ['--userns host', ['--network', 'none', '--userns', 'host'], 'create.hostNamespaces absent, request has ["userns"]'],
    ['--cgroupns host', ['--network', 'none', '--cgroupns', 'host'], 'create.hostNamespaces absent, request has ["cgroup"]'],
    ['--cap-add SYS_ADMIN', ['--network', 'none', '--cap-add', 'SYS_ADMIN'], 'create.capAdd subsetOf'],
    ['--cap-add cap_sys_admin', ['--network', 'none', '--cap-add', 'cap_sys_admin'], 'request has ["SYS_ADMIN"]'],
    ['--cap-add ALL', ['--network', 'none', '--cap-add', 'ALL'], 'request has ["ALL"]'],
    ['--security-opt seccomp=unconfined', ['--network', 'none', '--security-opt', 'seccomp=unconfined'], 'create.unconfined == false, request has true'],
    ['--security-opt apparmor=unconfined', ['--network', 'none', '--security-opt', 'apparmor=unconfined'], 'create.unconfined == false, request has true'],
    ['--security-opt label=disable', ['--network', 'none', '--security-opt', 'label=disable'], 'create.unconfined == false, request has true'],
    ['--security-opt systempaths=unconfined (the CLI sends empty MaskedPaths)', ['--network', 'none', '--security-opt', 'systempaths=unconfined'], 'create.unconfined == false, request has true'],
    ['--device /dev/null', ['--network', 'none', '--device', '/dev/null'], 'create.devices absent, request has ["/dev/null"]'],
    ['--device-cgroup-rule', ['--network', 'none', '--device-cgroup-rule', 'c 1:3 mr'], 'create.devices absent'],
    ['--gpus all', ['--network', 'none', '--gpus', 'all'], 'create.devices absent'],
    ['--volumes-from', ['--network', 'none', '--volumes-from', 'some-builder'], 'create.volumesFrom absent'],
    ['--sysctl', ['--network', 'none', '--sysctl', 'net.ipv4.ip_forward=1'], 'create.sysctls absent'],
    ['--runtime', ['--network', 'none', '--runtime', 'runc'], 'create.runtime absent'],
    ['--cgroup-parent', ['--network', 'none', '--cgroup-parent', 'escape'], 'create.cgroupParent absent'],
    ['-p 80:80 (a privileged host port)', ['-p', '80:80'], 'create.publishedPorts each >= 1024, request has [80]'],
  ])('refuses %s, naming the rule and the condition, and creates nothing', async (_name, flags, why) => {
    const marker = `dockward.case=${uniqueName('case')}`;
    const vol = uniqueName('cibind');
    const args = flags.map((f) => f.replace('{ci}', ciRoot).replace('{vol}', vol));
    const r = await run(['--label', marker, ...args]);
    expect(r.code, r.stdout).not.toBe(0);
    expect(r.stderr).toContain(`Error response from daemon: dockward: denied by rule default-deny: rule ${CREATE_RULE} needs `);
    expect(r.stderr).toContain(why);
    expect(await containersLabelled(marker)).toEqual([]);
    const v = await dockerDirect(['volume', 'inspect', vol]);
    expect(v.code, 'the volume must not exist').not.toBe(0);
  });

  it('refuses an image that is not on the allowlist', async () => {
    const r = await run(['--network', 'none'], ['true'], 'debian:12');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`rule ${CREATE_RULE} needs create.image in ["busybox:*", "alpine:*", "registry.example.com/ci/**"], request has "debian:12"`);
  });

  it('refuses an image named by its ID: an ID cannot be checked against names', async () => {
    const id = await dockerDirect(['image', 'inspect', '--format', '{{.Id}}', TEST_IMAGE]);
    expect(id.code, id.stderr).toBe(0);
    const short = id.stdout.trim().replace(/^sha256:/, '').slice(0, 12);
    const r = await run(['--network', 'none'], ['true'], short);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('create.image cannot be read unambiguously from the request');
  });

  it('refuses a privileged exec and allows a plain one', async () => {
    const name = uniqueName('ciexec');
    const started = await gw.dockerAs(CI, ['run', '-d', '--name', name, '--network', 'none', ...labelArgs(), TEST_IMAGE, 'sleep', '300']);
    expect(started.code, started.stderr).toBe(0);
    const plain = await gw.dockerAs(CI, ['exec', name, 'echo', 'inside']);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toBe('inside\n');
    const priv = await gw.dockerAs(CI, ['exec', '--privileged', name, 'true']);
    expect(priv.code).not.toBe(0);
    expect(priv.stderr).toContain('dockward: denied by rule default-deny: rule ci-execs-unprivileged needs exec.privileged == false, request has true');
  });

  it('refuses a volume whose driver options bind a host path, and creates no volume', async () => {
    const vol = uniqueName('cibindvol');
    const r = await gw.dockerAs(CI, ['volume', 'create', '--opt', 'type=none', '--opt', 'o=bind', '--opt', 'device=/etc', vol]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('rule ci-creates-volumes needs create.hostPaths each under');
    expect((await dockerDirect(['volume', 'inspect', vol])).code).not.toBe(0);
    const plain = await gw.dockerAs(CI, ['volume', 'create', vol]);
    expect(plain.code, plain.stderr).toBe(0);
    await dockerDirect(['volume', 'rm', vol]);
  });

  describe('requests the CLI would not send', () => {
    async function send(method: string, urlPath: string, body: string): Promise<{ status: number; message: string }> {
      const token = gw.token(CI.sub, CI.groups);
      return new Promise((resolve, reject) => {
        const req = http.request(`${gw.url}${urlPath}`, { method, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let message = text;
            try {
              message = (JSON.parse(text) as { message?: string }).message ?? text;
            } catch {
              /* not JSON */
            }
            resolve({ status: res.statusCode ?? 0, message });
          });
        });
        req.on('error', reject);
        req.end(body);
      });
    }

    const labels = () => ({ [TEST_LABEL.split('=')[0]!]: TEST_LABEL.split('=')[1]! });

    it.each([
      ['a legacy top-level Privileged', (l: object) => ({ Image: TEST_IMAGE, Labels: l, privileged: true }), 403, 'create.privileged == false, request has true'],
      ['a legacy top-level Binds beside a null HostConfig', (l: object) => ({ Image: TEST_IMAGE, Labels: l, HostConfig: null, BINDS: ['/etc:/x'] }), 403, 'create.hostPaths each under'],
      ['a capability in a spelling only Go upper-cases', (l: object) => ({ Image: TEST_IMAGE, Labels: l, HostConfig: { NetworkMode: 'none', CapAdd: ['cap_\u017fys_adm\u0131n'] } }), 403, 'request has ["SYS_ADMIN"]'],
    ])('refuses %s', async (_n, body, status, why) => {
      const name = uniqueName('cihttp');
      const r = await send('POST', `/v1.41/containers/create?name=${name}`, JSON.stringify(body(labels())));
      expect(r.status).toBe(status);
      expect(r.message).toContain(why);
      expect((await dockerDirect(['inspect', name])).code).not.toBe(0);
    });

    it('refuses a body with two spellings of HostConfig (dockerd would merge them into a privileged container)', async () => {
      const name = uniqueName('cihttp');
      const body = `{"Image":"${TEST_IMAGE}","HostConfig":{"Privileged":true},"hostConfig":{"NetworkMode":"none"}}`;
      const r = await send('POST', `/v1.41/containers/create?name=${name}`, body);
      expect(r.status).toBe(400);
      expect(r.message).toContain('appears twice');
      expect((await dockerDirect(['inspect', name])).code).not.toBe(0);
    });

    it('refuses a legacy start body that would make an existing container privileged, and leaves it unchanged', async () => {
      const name = uniqueName('cistart');
      const created = await gw.dockerAs(CI, ['create', '--name', name, '--network', 'none', ...labelArgs(), TEST_IMAGE, 'true']);
      expect(created.code, created.stderr).toBe(0);
      const r = await send('POST', `/v1.23/containers/${name}/start`, '{"Privileged":true,"Binds":["/:/host"]}');
      expect(r.status).toBe(400);
      expect(r.message).toContain('replaces the container\'s host configuration');
      const after = await dockerDirect(['inspect', '--format', '{{.HostConfig.Privileged}} {{.HostConfig.Binds}} {{.State.Status}}', name]);
      expect(after.stdout.trim()).toBe('false [] created');
    });
  });
});
