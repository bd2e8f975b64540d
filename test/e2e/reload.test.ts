/**
 * The gateway's life while people use it, through the real `dockward serve` process:
 * - a policy file rewritten mid-test - valid, then invalid - while `docker logs -f` and a
 *   hijacked `docker exec` keep streaming: the valid one takes over for new requests, the invalid
 *   one is refused (logged, counted) and the policy in force stays, open streams are not cut;
 * - SIGHUP reloads when file watching is off;
 * - SIGTERM during an open stream: no new connections, a finite request under way finishes, the
 *   stream is cut after the grace period, exit code 0.
 */
import { writeFile } from 'node:fs/promises';
import { expect, it } from 'vitest';
import {
  describeE2E,
  docker,
  dockerDirect,
  dockerStream,
  labelArgs,
  startGateway,
  TEST_IMAGE,
  uniqueName,
  type Gateway,
} from './harness.js';

const ALICE = { sub: 'alice', groups: ['dev'] };

const PING = `
  - name: everyone-pings
    effect: allow
    subjects: ["*"]
    actions: [system.ping, system.ping.head, container.list]
`;
/** v1: alice may read logs and exec. */
const V1 = `rules:${PING}
  - name: dev-reads-and-execs
    effect: allow
    subjects: ["group:dev"]
    actions: [container.inspect, container.logs, container.exec, exec.start, exec.inspect, exec.resize]
`;
/** v2: no logs any more, nor anything else but ping and list. */
const V2 = `rules:${PING}`;
/** Three errors: an unknown action, a duplicate rule name, a bad effect. */
const INVALID = `rules:${PING}
  - name: typo
    effect: allow
    subjects: ["group:dev"]
    actions: [container.logz]
  - name: typo
    effect: allowed
    subjects: ["group:dev"]
    actions: [container.logs]
`;

/** A container that prints a numbered line every 100 ms, started straight at the daemon. */
async function chattyContainer(): Promise<string> {
  const name = uniqueName('chatty');
  const r = await dockerDirect(['run', '-d', '--name', name, '--network', 'none', ...labelArgs(), TEST_IMAGE, 'sh', '-c', 'i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.1; done']);
  expect(r.code, r.stderr).toBe(0);
  return name;
}

async function metric(gw: Gateway, series: string): Promise<number> {
  const text = await (await fetch(gw.metricsUrl)).text();
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

async function until(what: string, f: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The highest line number a chatty stream has printed so far. */
function lastLine(out: string): number {
  const m = [...out.matchAll(/(?:line|exec)-(\d+)/g)];
  return m.length === 0 ? -1 : Number(m[m.length - 1]![1]);
}

describeE2E('live policy reload', () => {
  it('swaps in a rewritten valid policy, keeps it when the next one is invalid, and never cuts open streams', async () => {
    const name = await chattyContainer();
    const gw = await startGateway({ policyYaml: V1, config: { reload: { debounceMs: 100 } } });
    const configDir = await gw.dockerConfigDir(ALICE.sub, ALICE.groups);

    const logs = await dockerStream(['logs', '-f', name], { host: gw.host, configDir });
    // A hijacked session: exec start is an HTTP upgrade relayed as raw bytes.
    const exec = await dockerStream(['exec', name, 'sh', '-c', 'i=0; while true; do echo exec-$i; i=$((i+1)); sleep 0.1; done'], { host: gw.host, configDir });
    await logs.waitFor('line-');
    await exec.waitFor('exec-');
    expect((await gw.dockerAs(ALICE, ['logs', '--tail', '1', name])).code).toBe(0);

    // Valid v2: new requests are decided under it.
    await writeFile(gw.policyFile, V2);
    await until('the reload of v2', async () => (await metric(gw, 'dockward_policy_reloads_total{result="success"}')) >= 2);
    const denied = await gw.dockerAs(ALICE, ['logs', '--tail', '1', name]);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/dockward: denied by rule default-deny/);
    expect(await metric(gw, 'dockward_policy_rules')).toBe(1);

    // Invalid: refused, every error logged, counted; v2 stays in force.
    await writeFile(gw.policyFile, INVALID);
    await until('the failed reload', async () => (await metric(gw, 'dockward_policy_reloads_total{result="error"}')) === 1);
    const errors = gw.stderr().split('\n').filter((l) => l.includes('"policy reload: error"'));
    expect(errors).toHaveLength(3);
    expect(errors.join('\n')).toMatch(/unknown action \\"container\.logz\\"/);
    expect(errors.join('\n')).toMatch(/duplicate rule name \\"typo\\"/);
    expect(errors.join('\n')).toMatch(/effect must be allow or deny/);
    expect(gw.stderr()).toMatch(/policy reload failed: the policy in force is kept/);
    expect((await gw.dockerAs(ALICE, ['ps', '-q'])).code).toBe(0);
    expect((await gw.dockerAs(ALICE, ['logs', '--tail', '1', name])).stderr).toMatch(/denied by rule default-deny/);
    expect(await metric(gw, 'dockward_policy_rules')).toBe(1);

    // The stream and the hijacked session opened under v1 are still flowing.
    for (const s of [logs, exec]) {
      const seen = lastLine(s.stdout());
      await s.waitFor(new RegExp(`-(${seen + 3})\\n`));
    }
    await logs.kill();
    await exec.kill();
  });

  it('reloads on SIGHUP when file watching is off (and only then)', async () => {
    const name = await chattyContainer();
    const gw = await startGateway({ policyYaml: V1, config: { reload: { watch: false } } });
    await writeFile(gw.policyFile, V2);
    // Time for a watcher to fire, if there wrongly were one.
    await new Promise((r) => setTimeout(r, 1000));
    expect((await gw.dockerAs(ALICE, ['logs', '--tail', '1', name])).code).toBe(0);
    process.kill(gw.pid, 'SIGHUP');
    await until('the SIGHUP reload', () => /"trigger":"signal".*"msg":"policy reloaded"/.test(gw.stderr()));
    expect((await gw.dockerAs(ALICE, ['logs', '--tail', '1', name])).stderr).toMatch(/denied by rule default-deny/);
  });
});

describeE2E('graceful shutdown on SIGTERM', () => {
  it('stops accepting, lets a request under way finish, cuts the open stream after the grace period, exits 0', async () => {
    const chatty = await chattyContainer();
    // PID 1 of this one answers SIGTERM by saying so and carrying on, so `docker stop -t 3` takes
    // three seconds: a finite request the gateway has under way when it is told to stop.
    const stubborn = uniqueName('stubborn');
    const started = await dockerDirect(['run', '-d', '--name', stubborn, '--network', 'none', ...labelArgs(), TEST_IMAGE, 'sh', '-c', 'trap "echo got-term" TERM; echo ready; while true; do sleep 0.1; done']);
    expect(started.code, started.stderr).toBe(0);

    const policy = `rules:${PING}
  - name: dev-operates
    effect: allow
    subjects: ["group:dev"]
    actions: [container.inspect, container.logs, container.stop]
`;
    const gw = await startGateway({ policyYaml: policy, config: { shutdown: { graceSeconds: 4 } } });
    const configDir = await gw.dockerConfigDir(ALICE.sub, ALICE.groups);
    const logs = await dockerStream(['logs', '-f', chatty], { host: gw.host, configDir });
    await logs.waitFor('line-');

    const stop = docker(['stop', '-t', '3', stubborn], { host: gw.host, configDir });
    await until('dockerd to have signalled the container', async () => (await dockerDirect(['logs', stubborn])).stdout.includes('got-term'));

    process.kill(gw.pid, 'SIGTERM');
    await until('the shutdown log line', () => gw.stderr().includes('shutting down'));
    const late = await gw.dockerAs(ALICE, ['ps', '-q'], { timeoutMs: 10_000 });
    expect(late.code).not.toBe(0);
    expect(late.stderr).toMatch(/connection refused|Cannot connect/i);

    const stopped = await stop;
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout.trim()).toBe(stubborn);

    const exit = await gw.exited;
    expect(exit).toEqual({ code: 0, signal: null, killed: false });
    const streamed = await logs.exited;
    expect(streamed.timedOut).toBe(false);
    expect(streamed.stdout).toMatch(/line-\d+/);
    expect(gw.stderr()).toMatch(/"msg":"stopped"/);
  });
});
