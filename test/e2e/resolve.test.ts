/** Target resolution against the real daemon: the object a request names is the one judged. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTargetResolver, type TargetResolver } from '../../src/docker/resolve.js';
import { TEST_IMAGE, describeE2E, dockerDirect, dockerSock, labelArgs, uniqueName } from './harness.js';

describeE2E('target resolution', () => {
  let r: TargetResolver;
  const name = uniqueName('res');
  let id = '';
  beforeAll(async () => {
    r = createTargetResolver(dockerSock(), { ownerLabel: 'dockward.owner', teamLabel: 'dockward.team' });
    const c = await dockerDirect(['create', '--network', 'none', '--name', name, ...labelArgs(), '--label', 'dockward.owner=alice', '--label', 'dockward.team=dev', '--label', 'env=prod', TEST_IMAGE, 'sleep', '300']);
    expect(c.code).toBe(0);
    id = c.stdout.trim();
  });
  afterAll(() => r?.close());

  it.each([
    ['the full id', () => id],
    ['a unique id prefix', () => id.slice(0, 12)],
    ['the name', () => name],
    ['the name with a leading slash', () => `/${name}`],
  ])('resolves a container by %s', async (_n, ref) => {
    const t = await r.resolve('container', ref());
    expect(t).toEqual({ status: 'found', target: { kind: 'container', id, name, image: TEST_IMAGE, owner: 'alice', team: 'dev', labels: expect.objectContaining({ env: 'prod', 'dockward.owner': 'alice' }) } });
  });

  it("relays the daemon's own 404 for an unknown reference", async () => {
    const t = await r.resolve('container', 'no-such-container-xyz');
    expect(t.status).toBe('missing');
    if (t.status === 'missing') expect(JSON.parse(t.body.toString()).message).toMatch(/No such container: no-such-container-xyz/);
  });

  it('judges a name reused after removal on the new container', async () => {
    const n = uniqueName('reuse');
    await dockerDirect(['create', '--network', 'none', '--name', n, ...labelArgs(), '--label', 'dockward.owner=alice', TEST_IMAGE, 'true']);
    expect(await r.resolve('container', n)).toMatchObject({ target: { owner: 'alice' } });
    await dockerDirect(['rm', n]);
    await dockerDirect(['create', '--network', 'none', '--name', n, ...labelArgs(), '--label', 'dockward.owner=bob', TEST_IMAGE, 'true']);
    expect(await r.resolve('container', n)).toMatchObject({ target: { owner: 'bob' } });
  });

  it('resolves an exec instance to its container', async () => {
    expect((await dockerDirect(['start', name])).code).toBe(0);
    const out = await fetchExec(id);
    expect(await r.resolve('exec', out)).toMatchObject({ status: 'found', target: { kind: 'exec', id, owner: 'alice', team: 'dev' } });
  });

  it('resolves images, volumes and networks', async () => {
    expect(await r.resolve('image', TEST_IMAGE)).toMatchObject({ status: 'found', target: { kind: 'image', name: TEST_IMAGE } });
    const v = uniqueName('vol');
    await dockerDirect(['volume', 'create', '--label', 'dockward.team=qa', v]);
    expect(await r.resolve('volume', v)).toMatchObject({ status: 'found', target: { kind: 'volume', name: v, team: 'qa' } });
    await dockerDirect(['volume', 'rm', v]);
    expect(await r.resolve('network', 'none')).toMatchObject({ status: 'found', target: { kind: 'network', name: 'none' } });
  });
});

/** Creates an exec instance directly on the daemon and returns its id. */
async function fetchExec(containerId: string): Promise<string> {
  const http = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: dockerSock(), method: 'POST', path: `/containers/${containerId}/exec`, headers: { 'Content-Type': 'application/json' } }, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => resolve(JSON.parse(b).Id));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ Cmd: ['true'] }));
  });
}
