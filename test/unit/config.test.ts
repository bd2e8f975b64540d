import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../../src/config/load.js';

const parse = (yaml: string, flags = {}, env: NodeJS.ProcessEnv = {}) => parseConfig(yaml, 'dockward.yaml', flags, env, '/srv/dockward');

const MINIMAL = `auth:\n  jwt:\n    secretFile: s\n`;

describe('config', () => {
  it('applies the documented defaults to a minimal file', () => {
    const r = parse(MINIMAL);
    expect(r.errors).toEqual([]);
    expect(r.config).toMatchObject({
      listen: '127.0.0.1:4000',
      upstream: '/var/run/docker.sock',
      policies: ['/srv/dockward/policies/default.yaml'],
      metrics: { listen: '127.0.0.1:9400' },
      audit: { file: '-' },
      limits: { inspectedBodyBytes: 1048576 },
      ownership: { ownerLabel: 'dockward.owner', teamLabel: 'dockward.team' },
      auth: { anonymous: false, jwt: { algorithms: ['HS256'], secretFile: '/srv/dockward/s', userClaim: 'sub', groupsClaim: 'groups' } },
    });
  });

  it('loads the shipped config/dockward.yaml', () => {
    const r = loadConfig('config/dockward.yaml', {}, {});
    expect(r.errors).toEqual([]);
    expect(r.config?.listen).toBe('127.0.0.1:4000');
    expect(r.config?.auth.jwt?.createSecretIfMissing).toBe(true);
  });

  it.each([
    ['unknown top-level key', `${MINIMAL}listn: 1\n`, /dockward\.yaml:4:1: listn: unknown key/],
    ['unknown nested key', `auth:\n  jwt:\n    secretFile: s\n    secret: x\n`, /:4:5: auth\.jwt\.secret: unknown key/],
    ['algorithm none', `auth:\n  jwt:\n    algorithms: [none]\n    secretFile: s\n`, /auth\.jwt\.algorithms\.0: unsupported algorithm "none".*never accepted/],
    ['HS256 without a secret', `auth:\n  jwt:\n    algorithms: [HS256]\n`, /auth\.jwt\.secretFile: algorithms HS256 need secretFile/],
    ['RS256 without a key', `auth:\n  jwt:\n    algorithms: [RS256]\n`, /auth\.jwt\.publicKeyFile: algorithms RS256 need publicKeyFile/],
    ['no authentication at all', `auth: {}\n`, /no way to authenticate callers/],
    ['bad listen address', `${MINIMAL}listen: localhost\n`, /listen: must be HOST:PORT/],
    ['tcp upstream', `${MINIMAL}upstream: tcp://1.2.3.4:2375\n`, /upstream: must be unix:/],
    ['wrong type', `${MINIMAL}limits:\n  inspectedBodyBytes: lots\n`, /limits\.inspectedBodyBytes: /],
    ['YAML syntax error', `auth: [\n`, /dockward\.yaml:\d+:\d+: /],
    ['duplicate key', `${MINIMAL}listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n`, /dockward\.yaml:\d+:\d+: .*[Uu]nique|duplicate/],
    ['not a mapping', `- a\n- b\n`, /must be a mapping/],
  ])('refuses %s with a located message', (_name, yaml, pattern) => {
    const r = parse(yaml);
    expect(r.ok).toBe(false);
    expect(r.errors.join('\n')).toMatch(pattern);
  });

  it('reports every error at once', () => {
    const r = parse(`listen: nope\nupstream: http://x\nfoo: 1\nauth:\n  jwt:\n    algorithms: [none]\n`);
    expect(r.errors.length).toBeGreaterThanOrEqual(4);
  });

  it('lets flags override the file and DOCKWARD_* env override both', () => {
    const file = `${MINIMAL}listen: 127.0.0.1:1000\n`;
    expect(parse(file, { listen: '127.0.0.1:2000' }).config?.listen).toBe('127.0.0.1:2000');
    expect(parse(file, { listen: '127.0.0.1:2000' }, { DOCKWARD_LISTEN: '127.0.0.1:3000' }).config?.listen).toBe('127.0.0.1:3000');
    expect(parse(file, {}, { DOCKWARD_UPSTREAM: 'unix:///run/d.sock' }).config?.upstream).toBe('/run/d.sock');
    expect(parse(file, { policies: ['p/*.yaml'] }).config?.policies).toEqual(['/srv/dockward/p/*.yaml']);
  });

  it('refuses a bad environment value instead of ignoring it', () => {
    const r = parse(MINIMAL, {}, { DOCKWARD_LISTEN: 'everywhere' });
    expect(r.ok).toBe(false);
    expect(r.errors.join('\n')).toMatch(/DOCKWARD_LISTEN: must be HOST:PORT.*"everywhere"/);
  });

  it('says which file it could not read', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dw-cfg-'));
    const r = loadConfig(path.join(dir, 'missing.yaml'), {}, {});
    expect(r.errors[0]).toMatch(/missing\.yaml: cannot read config/);
    writeFileSync(path.join(dir, 'ok.yaml'), MINIMAL);
    expect(loadConfig(path.join(dir, 'ok.yaml'), {}, {}).ok).toBe(true);
  });
});
