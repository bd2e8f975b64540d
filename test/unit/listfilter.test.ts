import { describe, expect, it } from 'vitest';
import { createEventFilter, filterListBody, LIST_KINDS } from '../../src/pipeline/listfilter.js';
import { LIST_TARGET_ACTIONS } from '../../src/policy/facts.js';
import type { TargetFacts } from '../../src/types.js';

const own = { ownerLabel: 'dockward.owner', teamLabel: 'dockward.team' };
const devOnly = (t: TargetFacts) => t.team === 'dev';
const L = (team: string) => ({ 'dockward.team': team });

describe('filtering list answers by target', () => {
  // The policy layer lets rules read target.* on exactly the answers this module filters (and
  // on events); the two lists live in two layers, so a list added to one must be added to both.
  it('filters the same list actions the policy layer gives a target', () => {
    expect([...LIST_TARGET_ACTIONS].sort()).toEqual([...Object.keys(LIST_KINDS), 'system.events'].sort());
  });

  it.each([
    ['containers', 'container.list', [{ Id: 'a', Names: ['/a'], Labels: L('dev') }, { Id: 'b', Names: ['/b'], Labels: L('qa') }, { Id: 'c', Names: ['/c'], Labels: null }], ['a']],
    ['images', 'image.list', [{ Id: 'i1', RepoTags: ['x:1'], Labels: L('dev') }, { Id: 'i2', RepoTags: null, Labels: {} }], ['i1']],
    ['networks', 'network.list', [{ Id: 'n1', Name: 'n1', Labels: L('qa') }, { Id: 'n2', Name: 'n2', Labels: L('dev') }], ['n2']],
  ])('keeps only the allowed %s', (_n, action, items, kept) => {
    const out = filterListBody(action, Buffer.from(JSON.stringify(items)), devOnly, own);
    expect((JSON.parse(out!.toString()) as { Id: string }[]).map((i) => i.Id)).toEqual(kept);
  });

  it('filters volumes inside their envelope and keeps the warnings', () => {
    const body = { Volumes: [{ Name: 'v1', Labels: L('dev') }, { Name: 'v2', Labels: L('qa') }], Warnings: ['w'] };
    expect(JSON.parse(filterListBody('volume.list', Buffer.from(JSON.stringify(body)), devOnly, own)!.toString())).toEqual({ Volumes: [{ Name: 'v1', Labels: L('dev') }], Warnings: ['w'] });
    expect(JSON.parse(filterListBody('volume.list', Buffer.from('{"Volumes":null,"Warnings":null}'), devOnly, own)!.toString())).toEqual({ Volumes: [], Warnings: null });
  });

  it.each([
    ['not JSON', 'container.list', 'oops'],
    ['not a list', 'container.list', '{"Id":"a"}'],
    ['volumes without an envelope', 'volume.list', '[]'],
    ['an action that is not a list', 'container.inspect', '[]'],
  ])('refuses to pass on an answer it cannot filter: %s', (_n, action, text) => {
    expect(filterListBody(action, Buffer.from(text), devOnly, own)).toBeUndefined();
  });

  it('reads owner, team, name and image from a container item', () => {
    const seen: TargetFacts[] = [];
    filterListBody('container.list', Buffer.from(JSON.stringify([{ Id: 'a', Names: ['/web'], Image: 'busybox:local', Labels: { 'dockward.owner': 'alice', 'dockward.team': 'dev', env: 'prod' } }])), (t) => (seen.push(t), true), own);
    expect(seen[0]).toMatchObject({ kind: 'container', id: 'a', name: 'web', image: 'busybox:local', owner: 'alice', team: 'dev', labels: { env: 'prod' } });
  });
});

describe('filtering the events stream by target', () => {
  const ev = (type: string, name: string, team: string) => JSON.stringify({ Type: type, Action: 'start', Actor: { ID: name, Attributes: { name, 'dockward.team': team } } }) + '\n';

  it('passes the allowed events, drops the others, across chunk boundaries and split characters', async () => {
    const f = createEventFilter(devOnly, own);
    const out: string[] = [];
    f.on('data', (c: Buffer) => out.push(c.toString()));
    const text = ev('container', 'mine-é', 'dev') + ev('container', 'theirs', 'qa') + ev('daemon', 'd', '') + ev('volume', 'v', 'dev');
    const bytes = Buffer.from(text);
    // Split inside the two-byte é and inside a JSON object.
    const cut = bytes.indexOf(Buffer.from('é')) + 1;
    f.write(bytes.subarray(0, cut));
    f.write(bytes.subarray(cut, cut + 40));
    f.end(bytes.subarray(cut + 40));
    await new Promise((r) => f.on('end', r));
    expect(out.join('')).toBe(ev('container', 'mine-é', 'dev') + ev('volume', 'v', 'dev'));
  });
});
