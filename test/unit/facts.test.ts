/**
 * create.* / exec.* facts: what dockerd 20.10 will do with a body, in every spelling it accepts.
 * The rows marked "measured" were checked against the real daemon; test/e2e/differential.test.ts
 * keeps checking them.
 */
import { describe, expect, it } from 'vitest';
import {
  apiVersionBelow,
  cleanHostPath,
  deriveFacts,
  INDETERMINATE,
  legacyStartBodyIsRead,
  normaliseCapability,
  normaliseImage,
  parseBind,
  readSecurityOpts,
} from '../../src/docker/facts.js';
import { readDockerJson } from '../../src/docker/json.js';
import { compilePolicy } from '../../src/policy/compile.js';
import { decide } from '../../src/policy/decide.js';
import { ACTIONS } from '../../src/docker/catalogue.js';
import type { Identity } from '../../src/types.js';

function read(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  const r = readDockerJson(text);
  if (!r.ok) throw new Error(`test body does not read: ${r.reason}`);
  return r.value;
}

function facts(action: string, text: string | undefined, apiVersion?: string): Record<string, unknown> {
  const r = deriveFacts({ action, body: read(text), ...(apiVersion ? { apiVersion } : {}) });
  if (r === undefined) throw new Error(`${action} has no facts`);
  if (!r.ok) throw new Error(`refused: ${r.reason}`);
  return r.facts;
}

function refusal(action: string, text: string): string {
  const r = deriveFacts({ action, body: read(text) });
  if (r === undefined || r.ok) throw new Error(`not refused: ${JSON.stringify(r)}`);
  return r.reason;
}

const create = (text: string | undefined) => facts('container.create', text);

describe('container.create facts', () => {
  it('gives every fact its zero value for an empty body, as Go leaves unset fields', () => {
    expect({ ...create('{}') }).toEqual({
      'create.image': '',
      'create.user': '',
      'create.labels': {},
      'create.privileged': false,
      'create.capAdd': [],
      'create.hostPaths': [],
      'create.volumes': [],
      'create.devices': [],
      'create.hostNamespaces': [],
      'create.securityOpt': [],
      'create.unconfined': false,
      'create.sysctls': [],
      'create.cgroupParent': '',
      'create.runtime': '',
      'create.volumesFrom': [],
      'create.publishedPorts': [],
      'create.memory': 0,
      'create.nanoCpus': 0,
    });
    expect({ ...create(undefined) }).toEqual({ ...create('{}') });
    expect({ ...create('null') }).toEqual({ ...create('{}') });
  });

  it.each([
    ['HostConfig.Privileged', '{"HostConfig":{"Privileged":true}}', true],
    ['a case variant (measured)', '{"hostconfig":{"PRIVILEGED":true}}', true],
    ['null (Go leaves false)', '{"HostConfig":{"Privileged":null}}', false],
    ['the legacy top-level field (measured)', '{"Image":"x","Privileged":true}', true],
    ['the legacy field beside a HostConfig object: ignored (measured)', '{"Privileged":true,"HostConfig":{}}', false],
    ['the legacy field beside a null HostConfig (measured)', '{"Privileged":true,"HostConfig":null}', true],
    ['a dotless-i spelling Go does not match (measured)', '{"HostConfig":{"Priv\u0131leged":true}}', false],
  ])('privileged: %s', (_n, text, want) => {
    expect(create(text)['create.privileged']).toBe(want);
  });

  it.each([
    ['inner HostConfig only', '{"HostConfig":{"Memory":100}}', 100],
    ['legacy top level, no HostConfig', '{"Memory":200}', 200],
    ['legacy value fills a zero inner value (measured)', '{"Memory":300,"HostConfig":{"NetworkMode":"none"}}', 300],
    ['inner value wins over legacy', '{"Memory":300,"HostConfig":{"Memory":100}}', 100],
  ])('memory: %s', (_n, text, want) => {
    expect(create(text)['create.memory']).toBe(want);
  });

  it.each([
    ['sys_admin'],
    ['SYS_ADMIN'],
    ['CAP_SYS_ADMIN'],
    ['cap_sys_admin'],
    ['Cap_Sys_Admin'],
    // Go's strings.ToUpper maps long s to S and dotless i to I (measured: the container gets it).
    ['cap_\u017fys_adm\u0131n'],
  ])('capAdd: %s is SYS_ADMIN', (spelling) => {
    expect(create(JSON.stringify({ HostConfig: { CapAdd: [spelling] } }))['create.capAdd']).toEqual(['SYS_ADMIN']);
  });

  it.each([
    ['a string instead of a list (strslice, measured)', '{"HostConfig":{"CapAdd":"net_admin"}}', ['NET_ADMIN']],
    ['ALL kept', '{"HostConfig":{"CapAdd":["all"]}}', ['ALL']],
    ['duplicates once', '{"HostConfig":{"CapAdd":["NET_ADMIN","cap_net_admin"]}}', ['NET_ADMIN']],
    ['API 1.40 Capabilities counted as added', '{"HostConfig":{"Capabilities":["CAP_SYS_PTRACE"]}}', ['SYS_PTRACE']],
    ['legacy top-level CapAdd', '{"CapAdd":["SYS_ADMIN"]}', ['SYS_ADMIN']],
    ['a Kelvin sign is not K for ToUpper', '{"HostConfig":{"CapAdd":["\u212Aill"]}}', ['\u212AILL']],
  ])('capAdd: %s', (_n, text, want) => {
    expect(create(text)['create.capAdd']).toEqual(want);
  });

  it.each([
    ['a bind', '{"HostConfig":{"Binds":["/srv/ci/w:/w:ro"]}}', ['/srv/ci/w'], []],
    ['a bind escaping with .. (measured: mounts /etc)', '{"HostConfig":{"Binds":["/srv/ci/../../etc:/x"]}}', ['/etc'], []],
    ['the root', '{"HostConfig":{"Binds":["/:/host"]}}', ['/'], []],
    ['a named volume', '{"HostConfig":{"Binds":["cache:/cache"]}}', [], ['cache']],
    ['an anonymous volume', '{"HostConfig":{"Binds":["/data"]}}', [], []],
    ['a legacy top-level Binds (measured)', '{"Binds":["/etc:/x"]}', ['/etc'], []],
    ['a long-s spelling of Binds (measured)', '{"HostConfig":{"Bind\u017f":["/etc:/x"]}}', ['/etc'], []],
    ['a bind mount', '{"HostConfig":{"Mounts":[{"Type":"bind","Source":"/var/run/docker.sock","Target":"/s"}]}}', ['/var/run/docker.sock'], []],
    ['a volume mount', '{"HostConfig":{"Mounts":[{"Type":"volume","Source":"v","Target":"/v"}]}}', [], ['v']],
    ['a volume mount binding a host path through driver options (measured)',
      '{"HostConfig":{"Mounts":[{"Type":"volume","Source":"v","Target":"/v","VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"type":"none","o":"bind","device":"/etc/"}}}}]}}',
      ['/etc'], ['v']],
    ['a tmpfs mount', '{"HostConfig":{"Mounts":[{"Type":"tmpfs","Target":"/t"}]}}', [], []],
    ['lower-case field names in a mount', '{"HostConfig":{"Mounts":[{"type":"bind","source":"/etc","target":"/x"}]}}', ['/etc'], []],
  ])('hostPaths and volumes: %s', (_n, text, hostPaths, volumes) => {
    const f = create(text);
    expect(f['create.hostPaths']).toEqual(hostPaths);
    expect(f['create.volumes']).toEqual(volumes);
  });

  it.each([
    ['pid host', '{"HostConfig":{"PidMode":"host"}}', ['pid']],
    ['pid of another container', '{"HostConfig":{"PidMode":"container:abc"}}', ['pid']],
    ['ipc host', '{"HostConfig":{"IpcMode":"host"}}', ['ipc']],
    ['ipc shareable / private / none', '{"HostConfig":{"IpcMode":"shareable"}}', []],
    ['uts host', '{"HostConfig":{"UTSMode":"host"}}', ['uts']],
    ['network host', '{"HostConfig":{"NetworkMode":"host"}}', ['network']],
    ['network of another container', '{"HostConfig":{"NetworkMode":"container:db"}}', ['network']],
    ['network none / bridge / a named network', '{"HostConfig":{"NetworkMode":"ci-net"}}', []],
    ['userns host', '{"HostConfig":{"UsernsMode":"host"}}', ['userns']],
    ['cgroupns host', '{"HostConfig":{"CgroupnsMode":"host"}}', ['cgroup']],
    ['cgroupns private', '{"HostConfig":{"CgroupnsMode":"private"}}', []],
    ['an unknown mode is counted, not trusted', '{"HostConfig":{"PidMode":"HOST"}}', ['pid']],
    ['legacy top-level PidMode', '{"PidMode":"host"}', ['pid']],
    ['all of them', '{"HostConfig":{"PidMode":"host","IpcMode":"host","UTSMode":"host","NetworkMode":"host","UsernsMode":"host","CgroupnsMode":"host"}}', ['pid', 'ipc', 'uts', 'network', 'userns', 'cgroup']],
  ])('hostNamespaces: %s', (_n, text, want) => {
    expect(create(text)['create.hostNamespaces']).toEqual(want);
  });

  it.each([
    ['seccomp=unconfined', ['seccomp=unconfined'], true, ['seccomp=unconfined']],
    ['the deprecated ":" separator (measured: accepted)', ['seccomp:unconfined'], true, ['seccomp=unconfined']],
    ['apparmor=unconfined', ['apparmor=unconfined'], true, ['apparmor=unconfined']],
    ['another apparmor profile', ['apparmor=my-profile'], true, ['apparmor=my-profile']],
    ['label=disable', ['label=disable'], true, ['label=disable']],
    ['label:disable', ['label:disable'], true, ['label=disable']],
    ['bare "disable" (a label option)', ['disable'], true, ['label=disable']],
    ['a replaced SELinux type', ['label=type:svirt_apache_t'], true, ['label=type:svirt_apache_t']],
    ['an inline seccomp profile', ['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}'], true, ['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}']],
    ['systempaths=unconfined', ['systempaths=unconfined'], true, ['systempaths=unconfined']],
    ['no-new-privileges', ['no-new-privileges'], false, ['no-new-privileges']],
    ['no-new-privileges=true', ['no-new-privileges=true'], false, ['no-new-privileges=true']],
    ['an empty seccomp value (the default profile)', ['seccomp='], false, ['seccomp=']],
  ])('securityOpt %s', (_n, opts, unconfined, normalised) => {
    const f = create(JSON.stringify({ HostConfig: { SecurityOpt: opts } }));
    expect(f['create.unconfined']).toBe(unconfined);
    expect(f['create.securityOpt']).toEqual(normalised);
  });

  it.each([
    ['MaskedPaths: [] unmasks /proc (measured)', '{"HostConfig":{"MaskedPaths":[]}}', true],
    ['ReadonlyPaths: []', '{"HostConfig":{"ReadonlyPaths":[]}}', true],
    ['MaskedPaths replaced by another list', '{"HostConfig":{"MaskedPaths":["/proc/kcore"]}}', true],
    ['MaskedPaths: null keeps the defaults', '{"HostConfig":{"MaskedPaths":null}}', false],
    ['privileged', '{"HostConfig":{"Privileged":true}}', true],
    // The daemon appends label=disable for these itself (measured).
    ['the host pid namespace (SELinux labels off)', '{"HostConfig":{"PidMode":"host"}}', true],
    ['the host ipc namespace (SELinux labels off)', '{"HostConfig":{"IpcMode":"host"}}', true],
    ['the pid namespace of another container', '{"HostConfig":{"PidMode":"container:x"}}', false],
    ['nothing', '{"HostConfig":{}}', false],
  ])('unconfined: %s', (_n, text, want) => {
    expect(create(text)['create.unconfined']).toBe(want);
  });

  it('securityOpt: label=disable appended as the daemon does, once', () => {
    expect(create('{"HostConfig":{"Privileged":true,"SecurityOpt":["label:disable"]}}')['create.securityOpt']).toEqual(['label=disable']);
    expect(create('{"HostConfig":{"IpcMode":"host","SecurityOpt":["no-new-privileges"]}}')['create.securityOpt']).toEqual(['no-new-privileges', 'label=disable']);
  });

  it('devices: host paths, one entry per device request and per cgroup rule', () => {
    const f = create(JSON.stringify({
      HostConfig: {
        Devices: [{ PathOnHost: '/dev/fuse', PathInContainer: '/dev/fuse', CgroupPermissions: 'rwm' }],
        DeviceRequests: [{ Driver: 'nvidia', Count: -1, Capabilities: [['gpu', 'compute']] }],
        DeviceCgroupRules: ['c 1:3 mr'],
      },
    }));
    expect(f['create.devices']).toEqual(['/dev/fuse', 'request:nvidia:gpu+compute', 'rule:c 1:3 mr']);
  });

  it.each([
    ['one port', { '80/tcp': [{ HostPort: '8080' }] }, false, [8080]],
    ['a port the daemon picks', { '80/tcp': [{ HostPort: '' }] }, false, [0]],
    ['a null binding (zero value: daemon picks)', { '80/tcp': [null] }, false, [0]],
    ['a range', { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '8000-8002' }] }, false, [8000, 8001, 8002]],
    ['a range with a tail the daemon ignores', { '80/tcp': [{ HostPort: '1-2-3' }] }, false, [1, 2]],
    ['publish all', {}, true, [0]],
    ['overlapping ranges, once each', { '80/tcp': [{ HostPort: '5-7' }], '81/tcp': [{ HostPort: '6-8' }] }, false, [5, 6, 7, 8]],
  ])('publishedPorts: %s', (_n, bindings, all, want) => {
    expect(create(JSON.stringify({ HostConfig: { PortBindings: bindings, PublishAllPorts: all } }))['create.publishedPorts']).toEqual(want);
  });

  // Expanded one by one, these ranges would take billions of steps (the test would time out).
  it('lists each port once, however many full ranges a body repeats', () => {
    const bindings = { '80/tcp': Array.from({ length: 20_000 }, () => ({ HostPort: '0-65535' })) };
    const ports = create(JSON.stringify({ HostConfig: { PortBindings: bindings } }))['create.publishedPorts'] as number[];
    expect(ports).toHaveLength(65536);
    expect(ports[65535]).toBe(65535);
  });

  it('the rest of the HostConfig and Config facts', () => {
    const f = create(JSON.stringify({
      Image: 'docker.io/library/busybox',
      User: '0:0',
      Labels: { team: 'ci', empty: null },
      HostConfig: {
        Sysctls: { 'net.ipv4.ip_forward': '1' },
        CgroupParent: '/system.slice',
        Runtime: 'runc',
        VolumesFrom: ['builder:ro', 'cache'],
        NanoCpus: 500000000,
      },
    }));
    expect(f).toMatchObject({
      'create.image': 'busybox:latest',
      'create.user': '0:0',
      'create.labels': { team: 'ci', empty: '' },
      'create.sysctls': ['net.ipv4.ip_forward'],
      'create.cgroupParent': '/system.slice',
      'create.runtime': 'runc',
      'create.volumesFrom': ['builder', 'cache'],
      'create.nanoCpus': 500000000,
    });
  });

  it.each([
    // dockerd answers 400 for each of these (measured for the first two); so does the gateway.
    ['a string where Go wants a bool', '{"HostConfig":{"Privileged":"true"}}', /HostConfig.Privileged is a string where dockerd expects a boolean/],
    ['a fraction where Go wants an int64', '{"HostConfig":{"Memory":1.5}}', /HostConfig.Memory is a number where dockerd expects an integer/],
    ['a list where Go wants an object', '{"HostConfig":[]}', /HostConfig is a list where dockerd expects an object/],
    ['an object where Go wants a list', '{"HostConfig":{"Binds":{"a":"b"}}}', /HostConfig.Binds is an object where dockerd expects a list/],
    ['a number in a string list', '{"HostConfig":{"CapAdd":[1]}}', /HostConfig.CapAdd\[0\] is a number/],
    ['a body that is a list', '[]', /the body is a list/],
    ['a mount type the daemon does not know (measured: 400 for "BIND")', '{"HostConfig":{"Mounts":[{"Type":"BIND","Source":"/etc","Target":"/x"}]}}', /Mounts\[0\].Type "BIND" is not a mount type/],
    ['a host port that is not a number', '{"HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"http"}]}}}', /is not a port or port range/],
    ['a label value that is not a string', '{"Labels":{"a":1}}', /Labels.a is a number/],
  ])('refuses %s', (_n, text, reason) => {
    expect(refusal('container.create', text)).toMatch(reason);
  });

  it('refuses a hand-built body with two spellings of one key (the reader never builds one)', () => {
    const r = deriveFacts({ action: 'container.create', body: { HostConfig: { Privileged: false, privileged: true } } });
    expect(r).toEqual({ ok: false, reason: expect.stringMatching(/Privileged is spelled more than once/) });
  });
});

describe('image references', () => {
  it.each([
    ['busybox', 'busybox:latest'],
    ['busybox:local', 'busybox:local'],
    ['docker.io/library/busybox:local', 'busybox:local'],
    ['index.docker.io/library/busybox', 'busybox:latest'],
    ['library/busybox:1.36', 'busybox:1.36'],
    ['docker.io/foo/bar', 'foo/bar:latest'],
    ['registry.example.com/ci/tool:1.2', 'registry.example.com/ci/tool:1.2'],
    ['localhost:5000/x', 'localhost:5000/x:latest'],
    ['localhost/x', 'localhost/x:latest'],
    [`busybox@sha256:${'a'.repeat(64)}`, `busybox@sha256:${'a'.repeat(64)}`],
    [`busybox:1@sha256:${'a'.repeat(64)}`, `busybox:1@sha256:${'a'.repeat(64)}`],
    ['', ''],
  ])('%s reads as %s', (raw, want) => {
    expect(normaliseImage(raw)).toBe(want);
  });

  it.each([
    ['a short image ID (the daemon may find an image by ID prefix)', 'd2c94e258dcb'],
    ['a hex-only name', 'cafe'],
    ['a full image ID', 'a'.repeat(64)],
    ['a sha256: ID', `sha256:${'b'.repeat(64)}`],
    ['a sha256: prefix', 'sha256:bb'],
    ['upper case in the repository', 'BusyBox'],
    ['upper case in the first component (not a registry)', 'Foo/bar'],
    ['a space', 'busybox '],
  ])('%s is indeterminate', (_n, raw) => {
    expect(normaliseImage(raw)).toBe(INDETERMINATE);
  });

  it('an indeterminate image makes an allow rule on create.image fail and names why', () => {
    const { policy, errors } = compilePolicy(
      [{ file: 'p.yaml', text: 'rules:\n  - name: ci\n    effect: allow\n    subjects: ["*"]\n    actions: [container.create]\n    when:\n      create.image: { in: ["busybox:*"] }\n' }],
      { actions: ACTIONS },
    );
    expect(errors).toEqual([]);
    const subject: Identity = { user: 'alice', groups: [], via: 'jwt' };
    const f = create('{"Image":"d2c94e258dcb"}');
    expect(decide(policy!, { subject, action: 'container.create', query: {}, facts: f })).toEqual({
      effect: 'deny',
      rule: 'default-deny',
      reason: 'rule ci needs create.image in ["busybox:*"], but create.image cannot be read unambiguously from the request',
    });
    expect(decide(policy!, { subject, action: 'container.create', query: {}, facts: create('{"Image":"busybox"}') }).effect).toBe('allow');
  });
});

describe('container.start facts (a legacy body replaces the HostConfig)', () => {
  it.each([
    ['below 1.24, a body of 8 bytes or more is read', '1.23', 8, true],
    ['a 7-byte body is ignored', '1.23', 7, false],
    ['from 1.24 on a body is a 400, never read', '1.24', 100, false],
    ['1.9 is below 1.24', '1.9', 100, true],
    ['an unversioned path is the current API', undefined, 100, false],
  ])('%s', (_n, version, length, want) => {
    expect(legacyStartBodyIsRead(version, length)).toBe(want);
  });

  it('reads the body as the create wrapper: top-level fields or a HostConfig object (measured)', () => {
    expect(facts('container.start', '{"Privileged":true,"Binds":["/etc:/hostetc"]}', '1.23')).toMatchObject({
      'create.privileged': true,
      'create.hostPaths': ['/etc'],
    });
    expect(facts('container.start', '{"HostConfig":{"Privileged":true}}', '1.23')['create.privileged']).toBe(true);
  });

  it('has only HostConfig facts, zero without a body', () => {
    const f = facts('container.start', undefined);
    expect(f['create.privileged']).toBe(false);
    expect('create.image' in f).toBe(false);
  });
});

describe('container.update, container.exec, service and volume facts', () => {
  it('update: the resource limits, in any spelling', () => {
    expect(facts('container.update', '{"memory":1024,"NANOCPUS":5,"RestartPolicy":{"Name":"always"}}')).toEqual({
      'create.memory': 1024,
      'create.nanoCpus': 5,
    });
  });

  it.each([
    ['a plain exec', '{"Cmd":["sh","-c","id"]}', { 'exec.privileged': false, 'exec.user': '', 'exec.cmd': ['sh', '-c', 'id'] }],
    ['case variants (measured: accepted)', '{"cmd":["id"],"PRIVILEGED":true,"u\u017fer":"0"}', { 'exec.privileged': true, 'exec.user': '0', 'exec.cmd': ['id'] }],
    ['no body', undefined, { 'exec.privileged': false, 'exec.user': '', 'exec.cmd': [] }],
  ])('exec: %s', (_n, text, want) => {
    expect({ ...facts('container.exec', text) }).toEqual(want);
  });

  it('exec: refuses a privileged flag that is not a boolean (measured: dockerd refuses it)', () => {
    expect(refusal('container.exec', '{"Cmd":["id"],"Privileged":"1"}')).toMatch(/Privileged is a string/);
  });

  it('service: the task container spec', () => {
    const f = facts('service.create', JSON.stringify({
      Name: 'web',
      Labels: { service: 'label' },
      TaskTemplate: {
        ContainerSpec: {
          Image: 'nginx',
          User: 'www',
          Labels: { team: 'web' },
          CapabilityAdd: ['cap_net_admin'],
          Mounts: [{ Type: 'bind', Source: '/var/log/', Target: '/logs' }, { Type: 'volume', Source: 'data', Target: '/data' }],
          Sysctls: { 'net.core.somaxconn': '1024' },
          Privileges: { SELinuxContext: { Disable: true } },
        },
        Resources: { Limits: { MemoryBytes: 1048576, NanoCPUs: 1000000000 } },
        Networks: [{ Target: 'host' }],
      },
      EndpointSpec: { Ports: [{ TargetPort: 80, PublishedPort: 8080 }, { TargetPort: 81 }] },
    }));
    expect({ ...f }).toEqual({
      'create.image': 'nginx:latest',
      'create.user': 'www',
      'create.labels': { team: 'web' },
      'create.capAdd': ['NET_ADMIN'],
      'create.hostPaths': ['/var/log'],
      'create.volumes': ['data'],
      'create.sysctls': ['net.core.somaxconn'],
      'create.unconfined': true,
      'create.hostNamespaces': ['network'],
      'create.publishedPorts': [0, 8080],
      'create.memory': 1048576,
      'create.nanoCpus': 1000000000,
    });
  });

  it.each([
    ['a plugin spec', '{"TaskTemplate":{"PluginSpec":{"Name":"x"}}}'],
    ['the plugin runtime', '{"TaskTemplate":{"Runtime":"plugin"}}'],
  ])('service: refuses %s (its privileges are not container facts)', (_n, text) => {
    expect(refusal('service.update', text)).toMatch(/plugin/);
  });

  it.each([
    ['a bind through the local driver', '{"Name":"v","DriverOpts":{"type":"none","o":"bind","device":"/etc"}}', ['/etc']],
    ['a block device', '{"DriverOpts":{"type":"ext4","device":"/dev/sda1"}}', ['/dev/sda1']],
    ['a tmpfs volume', '{"DriverOpts":{"type":"tmpfs","device":"tmpfs"}}', ['tmpfs']],
    ['no options', '{"Name":"v"}', []],
    ['option names are exact (map keys)', '{"DriverOpts":{"Device":"/etc"}}', []],
  ])('volume: %s', (_n, text, want) => {
    expect(facts('volume.create', text)['create.hostPaths']).toEqual(want);
  });
});

describe('helpers', () => {
  it.each([
    ['/srv/ci/../../etc', '/etc'],
    ['//srv//ci/./x/', '/srv/ci/x'],
    ['/..', '/'],
    ['relative/../x', 'relative/../x'],
  ])('cleanHostPath(%s) = %s', (p, want) => {
    expect(cleanHostPath(p)).toBe(want);
  });

  it.each([
    ['/a:/b', { hostPath: '/a' }],
    ['/a:/b:ro,rshared', { hostPath: '/a' }],
    ['vol:/b', { volume: 'vol' }],
    ['/b', {}],
    [':/b', {}],
    ['/a:/b:ro:z', { hostPath: '/a' }],
  ])('parseBind(%s)', (spec, want) => {
    expect(parseBind(spec)).toEqual(want);
  });

  it.each([
    ['net_admin', 'NET_ADMIN'],
    ['CAP_CHOWN', 'CHOWN'],
    ['all', 'ALL'],
    ['stra\u00dfe', 'STRA\u00dfE'],
  ])('normaliseCapability(%s) = %s', (raw, want) => {
    expect(normaliseCapability(raw)).toBe(want);
  });

  it('readSecurityOpts keeps an option without separator as is (the daemon refuses it)', () => {
    expect(readSecurityOpts(['bogus'])).toEqual({ normalised: ['bogus'], loosens: false });
  });

  it.each([
    ['1.23', 1, 24, true],
    ['1.24', 1, 24, false],
    ['0.99', 1, 24, true],
    [undefined, 1, 24, false],
  ])('apiVersionBelow(%s, %d.%d) = %s', (v, a, b, want) => {
    expect(apiVersionBelow(v, a, b)).toBe(want);
  });

  it('actions without facts have none', () => {
    expect(deriveFacts({ action: 'container.kill', body: undefined })).toBeUndefined();
  });
});
