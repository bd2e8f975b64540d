/**
 * The inspect and authorize stages around the facts: which requests get facts, which bodies
 * are refused, and what the decision sees. Contexts are built by hand; the real server is
 * covered by test/e2e (inspect.test.ts, differential.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { ACTIONS, ACTIONS_BY_NAME } from '../../src/docker/catalogue.js';
import { canonicalise } from '../../src/docker/canonical.js';
import { classify } from '../../src/docker/classify.js';
import { rejection } from '../../src/errors.js';
import { createAuthorize } from '../../src/pipeline/authorize.js';
import type { RequestContext } from '../../src/pipeline/context.js';
import { createInspect, factsOf } from '../../src/pipeline/inspect.js';
import { compilePolicy } from '../../src/policy/compile.js';
import { decide, factNeeds } from '../../src/policy/decide.js';
import type { CompiledPolicy } from '../../src/policy/types.js';
import type { DecisionInput, Rejection } from '../../src/types.js';
import { Socket } from 'node:net';

function policyOf(text: string): CompiledPolicy {
  const r = compilePolicy([{ file: 'p.yaml', text }], { actions: ACTIONS });
  if (!r.policy) throw new Error(JSON.stringify(r.errors));
  return r.policy;
}

const CREATE_RULES = `
rules:
  - name: all
    effect: allow
    subjects: ["*"]
    actions: ["*"]
  - name: no-privileged
    effect: deny
    subjects: ["*"]
    actions: [container.create]
    when:
      create.privileged: true
`;

function context(method: string, url: string, body?: string | Buffer, headers: Record<string, string> = {}): RequestContext {
  const c = canonicalise(url);
  if (!c.ok) throw new Error(c.reason);
  const cls = classify(method, c.request.path);
  const bytes = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  return {
    id: 't',
    startNs: 0n,
    remote: '',
    socket: new Socket(),
    method,
    url,
    headers: { 'content-type': 'application/json', ...headers },
    upgrade: false,
    bodySource: {
      present: bytes !== undefined,
      read: async (limit: number): Promise<Buffer | Rejection> => {
        if (bytes!.length > limit) return rejection('body_too_large', 'too large');
        return bytes!;
      },
    },
    identity: { user: 'alice', groups: [], via: 'jwt' },
    request: c.request,
    classification: cls,
    actionDef: ACTIONS_BY_NAME.get(cls.action),
    bytesIn: 0,
    bytesOut: 0,
  };
}

async function run(policy: CompiledPolicy, ctx: RequestContext, opts: { wired?: boolean } = {}) {
  let seen: DecisionInput | undefined;
  const inspect = createInspect({ inspectedBodyBytes: 1 << 20, ...(opts.wired === false ? {} : { factNeeds: (a: string) => factNeeds(policy, a) }) });
  const authorize = createAuthorize({ decide: (input) => ((seen = input), decide(policy, input)), ownership: { ownerLabel: 'dockward.owner', teamLabel: 'dockward.team' } });
  const r = (await inspect(ctx)) ?? (await authorize(ctx));
  return { rejection: r, input: seen };
}

describe('facts in the request path', () => {
  it('derives create facts and decides on them: a legacy top-level Privileged is denied', async () => {
    const p = policyOf(CREATE_RULES);
    const { rejection: r, input } = await run(p, context('POST', '/v1.41/containers/create', '{"Image":"busybox","privileged":true}'));
    expect(r).toEqual({ status: 403, code: 'denied', message: 'denied by rule no-privileged: create.privileged == true, request has true' });
    expect(input?.facts?.['create.privileged']).toBe(true);
    expect(input?.facts?.['create.image']).toBe('busybox:latest');
  });

  it('derives nothing for an action no rule reads facts on (the hot path stays cheap)', async () => {
    const p = policyOf(CREATE_RULES);
    const ctx = context('POST', '/v1.41/containers/abc/kill?signal=TERM');
    const { rejection: r, input } = await run(p, ctx);
    expect(r).toBeUndefined();
    expect(input?.facts).toBeUndefined();
    expect(factsOf(ctx)).toBeUndefined();
  });

  it('derives nothing for container.create when no rule reads its facts', async () => {
    const p = policyOf('rules:\n  - name: all\n    effect: allow\n    subjects: ["*"]\n    actions: ["*"]\n');
    const { rejection: r, input } = await run(p, context('POST', '/v1.41/containers/create', '{"Image":"busybox","HostConfig":{"Privileged":"yes"}}'));
    // dockerd refuses this body itself; nothing here needs to read it.
    expect(r).toBeUndefined();
    expect(input?.facts).toBeUndefined();
  });

  it('without the policy wired in, derives facts for every action that has them', async () => {
    const p = policyOf('rules:\n  - name: all\n    effect: allow\n    subjects: ["*"]\n    actions: ["*"]\n');
    const { input } = await run(p, context('POST', '/v1.41/containers/abc/exec', '{"Cmd":["id"],"User":"root"}'), { wired: false });
    expect(input?.facts).toEqual({ 'exec.privileged': false, 'exec.user': 'root', 'exec.cmd': ['id'] });
  });

  it.each([
    ['a type dockerd refuses', '{"Image":"busybox","HostConfig":{"Privileged":"true"}}', /HostConfig.Privileged is a string where dockerd expects a boolean/],
    ['two spellings of one key', '{"Image":"busybox","HostConfig":{"Privileged":false,"PRIVILEGED":true}}', /appears twice/],
    ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), /not valid UTF-8/],
  ])('refuses %s with 400 before deciding', async (_n, body, reason) => {
    const p = policyOf(CREATE_RULES);
    const { rejection: r, input } = await run(p, context('POST', '/v1.41/containers/create', body));
    expect(r).toMatchObject({ status: 400, code: 'bad_body', message: expect.stringMatching(reason) });
    expect(input).toBeUndefined();
  });

  describe('legacy container.start bodies', () => {
    const START_RULES = `
rules:
  - name: all
    effect: allow
    subjects: ["*"]
    actions: ["*"]
  - name: start-unprivileged
    effect: deny
    subjects: ["*"]
    actions: [container.start]
    when:
      create.privileged: true
`;

    it('refuses one that dockerd would read when no rule on container.start reads facts', async () => {
      const p = policyOf(CREATE_RULES);
      const { rejection: r } = await run(p, context('POST', '/v1.23/containers/abc/start', '{"Privileged":true}'));
      expect(r).toMatchObject({ status: 400, code: 'bad_body', message: expect.stringContaining("replaces the container's host configuration") });
    });

    it('refuses it too when the policy is not wired in', async () => {
      const p = policyOf(START_RULES);
      const { rejection: r } = await run(p, context('POST', '/v1.23/containers/abc/start', '{"Privileged":true}'), { wired: false });
      expect(r).toMatchObject({ status: 400, code: 'bad_body' });
    });

    it('judges it with the rules on container.start', async () => {
      const p = policyOf(START_RULES);
      const { rejection: r } = await run(p, context('POST', '/v1.23/containers/abc/start', '{"HostConfig":{"Privileged":true}}'));
      expect(r).toEqual({ status: 403, code: 'denied', message: 'denied by rule start-unprivileged: create.privileged == true, request has true' });
    });

    it.each([
      ['API 1.24 and later (dockerd answers 400 itself)', '/v1.41/containers/abc/start', '{"Privileged":true}'],
      ['an unversioned path', '/containers/abc/start', '{"Privileged":true}'],
      ['a body of 7 bytes or less', '/v1.23/containers/abc/start', '{"a":1}'],
    ])('reads no HostConfig for %s', async (_n, url, body) => {
      const p = policyOf(START_RULES);
      const { rejection: r, input } = await run(p, context('POST', url, body));
      expect(r).toBeUndefined();
      expect(input?.facts?.['create.privileged']).toBe(false);
    });
  });

  it('an indeterminate image is shown as such in the reason', async () => {
    const p = policyOf('rules:\n  - name: images\n    effect: allow\n    subjects: ["*"]\n    actions: [container.create]\n    when:\n      create.image: { in: ["busybox:*"] }\n');
    const { rejection: r } = await run(p, context('POST', '/v1.41/containers/create', '{"Image":"3f57d9401f8d"}'));
    expect(r?.message).toBe('denied by rule default-deny: rule images needs create.image in ["busybox:*"], but create.image cannot be read unambiguously from the request');
  });
});
