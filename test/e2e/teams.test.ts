/**
 * Issue 4 end to end: teams may only act on what they own. alice (dev) creates a container;
 * bob (qa) can neither act on it nor see it; carol (ops) may kill and export it; nobody
 * exports a container labelled env=prod. Driven with the real docker CLI as three users.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { REPO_ROOT, TEST_IMAGE, describeE2E, dockerDirect, dockerStream, labelArgs, startGateway, uniqueName, type Gateway, type Identity } from './harness.js';

const alice: Identity = { sub: 'alice', groups: ['dev'] };
const bob: Identity = { sub: 'bob', groups: ['qa'] };
const carol: Identity = { sub: 'carol', groups: ['ops'] };
const OUT = mkdtempSync(path.join(os.tmpdir(), 'dw-teams-'));
const DENIED = /dockward: denied by rule [\w-]+: .*target\.team/;

describeE2E('teams: ownership and targets', () => {
  let g: Gateway;
  const web = uniqueName('alice-web');
  beforeAll(async () => {
    g = await startGateway({ policyYaml: readFileSync(path.join(REPO_ROOT, 'policies/examples/teams.yaml'), 'utf8') });
    // alice spoofs bob's ownership label: the gateway must overwrite it.
    const r = await g.dockerAs(alice, ['run', '-d', '--network', 'none', '--name', web, ...labelArgs(), '--label', 'dockward.owner=bob', '--label', 'dockward.team=qa', TEST_IMAGE, 'sh', '-c', 'while true; do echo tick; sleep 1; done']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
  afterAll(async () => {
    await dockerDirect(['rm', '-f', web]);
  });

  it('stamps the creator as owner and team, overwriting spoofed labels', async () => {
    const r = await dockerDirect(['inspect', '-f', '{{index .Config.Labels "dockward.owner"}}/{{index .Config.Labels "dockward.team"}}', web]);
    expect(r.stdout.trim()).toBe('alice/dev');
  });

  it.each([
    ['kill', ['kill', web]],
    ['stop', ['stop', '-t', '1', web]],
    ['rm', ['rm', '-f', web]],
    ['exec', ['exec', web, 'echo', 'pwned']],
    ['logs', ['logs', web]],
    ['export', ['export', '-o', path.join(OUT, 'bob.tar'), web]],
    ['cp', ['cp', `${web}:/bin/busybox`, OUT]],
    ['attach', ['attach', '--no-stdin', web]],
    ['inspect', ['inspect', web]],
  ])('bob (qa) cannot %s alice\'s container', async (_n, args) => {
    const r = await g.dockerAs(bob, args, { timeoutMs: 20_000 });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(DENIED);
    const still = await dockerDirect(['inspect', '-f', '{{.State.Running}}', web]);
    expect(still.stdout.trim()).toBe('true');
  });

  it('alice can act on her own container: exec, logs, top', async () => {
    expect((await g.dockerAs(alice, ['exec', web, 'echo', 'mine'])).stdout.trim()).toBe('mine');
    expect((await g.dockerAs(alice, ['logs', '--tail', '1', web])).stdout).toMatch(/tick/);
    expect((await g.dockerAs(alice, ['top', web])).code).toBe(0);
  });

  it("lists only the caller's team's containers in docker ps -a", async () => {
    const bobs = uniqueName('bob-job');
    expect((await g.dockerAs(bob, ['create', '--network', 'none', '--name', bobs, ...labelArgs(), TEST_IMAGE, 'true'])).code).toBe(0);
    try {
      const filter = ['ps', '-a', '--format', '{{.Names}}', '--filter', `label=${labelArgs()[1]}`];
      const seenByBob = (await g.dockerAs(bob, filter)).stdout.split('\n').filter(Boolean);
      const seenByAlice = (await g.dockerAs(alice, filter)).stdout.split('\n').filter(Boolean);
      expect(seenByBob).toContain(bobs);
      expect(seenByBob).not.toContain(web);
      expect(seenByAlice).toContain(web);
      expect(seenByAlice).not.toContain(bobs);
    } finally {
      await dockerDirect(['rm', '-f', bobs]);
    }
  });

  it("shows only the caller's team's events in docker events", async () => {
    const cfg = await g.dockerConfigDir(bob.sub, bob.groups);
    const events = await dockerStream(['events', '--format', '{{.Actor.Attributes.name}} {{.Action}}'], { host: g.host, configDir: cfg });
    try {
      const mine = uniqueName('bob-ev');
      const theirs = uniqueName('alice-ev');
      // alice's event first: if it were shown, it would arrive before bob's.
      expect((await g.dockerAs(alice, ['create', '--network', 'none', '--name', theirs, ...labelArgs(), TEST_IMAGE, 'true'])).code).toBe(0);
      expect((await g.dockerAs(bob, ['create', '--network', 'none', '--name', mine, ...labelArgs(), TEST_IMAGE, 'true'])).code).toBe(0);
      await events.waitFor(`${mine} create`, 20_000);
      expect(events.stdout()).not.toContain(theirs);
      await dockerDirect(['rm', '-f', mine, theirs]);
    } finally {
      await events.kill();
    }
  });

  it('carol (ops) can export and kill it', async () => {
    const exp = await g.dockerAs(carol, ['export', '-o', path.join(OUT, 'carol.tar'), web]);
    expect(exp.stderr).toBe('');
    expect(exp.code).toBe(0);
    const victim = uniqueName('carol-victim');
    expect((await g.dockerAs(alice, ['run', '-d', '--network', 'none', '--name', victim, ...labelArgs(), TEST_IMAGE, 'sleep', '300'])).code).toBe(0);
    const k = await g.dockerAs(carol, ['kill', victim]);
    expect(k.stderr).toBe('');
    expect((await dockerDirect(['inspect', '-f', '{{.State.Running}}', victim])).stdout.trim()).toBe('false');
    await dockerDirect(['rm', '-f', victim]);
  });

  it('nobody exports a container labelled env=prod, not even ops or its owner', async () => {
    const prod = uniqueName('prod');
    expect((await g.dockerAs(alice, ['create', '--network', 'none', '--name', prod, '--label', 'env=prod', ...labelArgs(), TEST_IMAGE, 'true'])).code).toBe(0);
    try {
      for (const who of [alice, carol]) {
        const r = await g.dockerAs(who, ['export', '-o', path.join(OUT, `${who.sub}-prod.tar`), prod]);
        expect(r.stderr).toMatch(/dockward: denied by rule teams-never-export-prod: .*target\.labels\.env/);
      }
    } finally {
      await dockerDirect(['rm', '-f', prod]);
    }
  });

  it('judges a reused name on the new container', async () => {
    const n = uniqueName('reused');
    expect((await g.dockerAs(bob, ['create', '--network', 'none', '--name', n, ...labelArgs(), TEST_IMAGE, 'true'])).code).toBe(0);
    expect((await g.dockerAs(bob, ['rm', n])).code).toBe(0);
    expect((await g.dockerAs(alice, ['create', '--network', 'none', '--name', n, ...labelArgs(), TEST_IMAGE, 'true'])).code).toBe(0);
    const r = await g.dockerAs(bob, ['rm', n]);
    expect(r.stderr).toMatch(DENIED);
    expect((await g.dockerAs(alice, ['rm', n])).code).toBe(0);
  });

  it("answers an unknown container with the daemon's own 404", async () => {
    const r = await g.dockerAs(bob, ['kill', 'no-such-container-dw']);
    expect(r.stderr).toMatch(/No such container: no-such-container-dw/);
    expect(r.stderr).not.toMatch(/dockward/);
  });
});
