/**
 * The action catalogue against the Engine API specifications it was generated from
 * (shared/docker-api, beside the repository clone; the runtime never reads them).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ACTIONS, ACTIONS_BY_NAME, UNKNOWN_ACTION } from '../../src/docker/catalogue.js';
import { canonicalise } from '../../src/docker/canonical.js';
import { classify, DOCKERD_ROUTES } from '../../src/docker/classify.js';
import type { ActionDef, BodyKind, TargetKind } from '../../src/types.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SPEC_DIR = path.resolve(REPO_ROOT, '../shared/docker-api');
const SPEC_VERSIONS = ['v1.41', 'v1.56'] as const;

interface SpecParameter {
  in: string;
  name: string;
  schema?: { type?: string; format?: string; $ref?: string };
}
interface SpecOperation {
  operationId: string;
  consumes?: string[];
  parameters?: SpecParameter[];
  responses: Record<string, unknown>;
}
interface SpecDocument {
  consumes?: string[];
  paths: Record<string, Record<string, SpecOperation | unknown>>;
}

interface SpecOp {
  readonly version: string;
  readonly method: string;
  readonly path: string;
  readonly operationId: string;
  readonly bodyParameter: SpecParameter | undefined;
  readonly consumes: readonly string[];
  readonly responds101: boolean;
}

const HTTP_METHODS = new Set(['get', 'head', 'post', 'put', 'delete', 'patch', 'options']);

function readSpec(version: string): SpecOp[] {
  const doc = parse(readFileSync(path.join(SPEC_DIR, `${version}.yaml`), 'utf8')) as SpecDocument;
  const ops: SpecOp[] = [];
  for (const [specPath, item] of Object.entries(doc.paths)) {
    for (const [method, raw] of Object.entries(item)) {
      if (!HTTP_METHODS.has(method)) continue;
      const op = raw as SpecOperation;
      ops.push({
        version,
        method: method.toUpperCase(),
        path: specPath,
        operationId: op.operationId,
        bodyParameter: op.parameters?.find((p) => p.in === 'body'),
        consumes: op.consumes ?? doc.consumes ?? [],
        responds101: '101' in op.responses,
      });
    }
  }
  return ops;
}

const SPEC_OPS: readonly SpecOp[] = SPEC_VERSIONS.flatMap(readSpec);

/** The naming rule of policy-language.md, written independently of the table. */
function expectedName(operationId: string): string {
  const reordered: Record<string, string> = {
    PutContainerArchive: 'container.archive.put',
    GetPluginPrivileges: 'plugin.privileges',
  };
  if (reordered[operationId] !== undefined) return reordered[operationId];
  const words = operationId.match(/[A-Z][a-z0-9]*/g) ?? [];
  expect(words.join(''), `operationId ${operationId} splits into capitalised words`).toBe(operationId);
  return words.map((w) => w.toLowerCase()).join('.');
}

/** Deliberate deviations from "the body parameter decides", each explained in catalogue-data.ts. */
const BODY_EXCEPTIONS: Readonly<Record<string, BodyKind>> = {
  ContainerStart: 'json', // API < 1.24 HostConfig body, still applied by dockerd 20.10
};

function expectedBody(op: SpecOp): BodyKind {
  if (BODY_EXCEPTIONS[op.operationId] !== undefined) return BODY_EXCEPTIONS[op.operationId]!;
  if (op.bodyParameter === undefined) return 'none';
  // `type: string` (format binary) bodies are tar archives, build contexts and image imports.
  return op.bodyParameter.schema?.type === 'string' ? 'stream' : 'json';
}

/** ExecStart upgrades to a raw stream although the specification documents only 200. */
const HIJACK_WITHOUT_101 = new Set(['ExecStart']);

const TARGET_BY_COLLECTION: Readonly<Record<string, TargetKind>> = {
  containers: 'container',
  images: 'image',
  volumes: 'volume',
  networks: 'network',
  exec: 'exec',
  services: 'service',
  tasks: 'task',
  nodes: 'node',
  secrets: 'secret',
  configs: 'config',
  plugins: 'plugin',
};

function expectedTarget(templatePath: string): TargetKind | undefined {
  if (!templatePath.includes('{')) return undefined;
  // A registry reference, not an object the daemon holds.
  if (templatePath.startsWith('/distribution/')) return undefined;
  return TARGET_BY_COLLECTION[templatePath.split('/')[1]!];
}

/** Routes dockerd serves that no specification documents: each must be named on purpose. */
const UNDOCUMENTED = [
  'container.copy',
  'checkpoint.list',
  'checkpoint.create',
  'checkpoint.delete',
  'build.cancel',
  'grpc',
];

function catalogueEntriesFor(method: string, templatePath: string): ActionDef[] {
  return ACTIONS.filter((a) => a.method === method && a.path === templatePath);
}

describe('every operation of the specifications is one catalogue action', () => {
  it('reads both specifications', () => {
    expect(SPEC_OPS.filter((o) => o.version === 'v1.41').length).toBeGreaterThan(100);
    expect(SPEC_OPS.filter((o) => o.version === 'v1.56').length).toBeGreaterThan(100);
  });

  it.each(SPEC_OPS)('$version $method $path ($operationId)', (op) => {
    const entries = catalogueEntriesFor(op.method, op.path);
    expect(entries.map((e) => e.operationId)).toEqual([op.operationId]);
    const entry = entries[0]!;
    expect(entry.name).toBe(expectedName(op.operationId));
    expect(entry.body).toBe(expectedBody(op));
    expect(entry.hijack === true).toBe(op.responds101 || HIJACK_WITHOUT_101.has(op.operationId));
    expect(entry.target).toBe(expectedTarget(op.path));
  });

  it.each(SPEC_OPS.filter((op) => op.bodyParameter !== undefined))(
    '$version $operationId: the body kind agrees with what the operation consumes',
    (op) => {
      const kind = catalogueEntriesFor(op.method, op.path)[0]!.body;
      if (kind === 'json') expect(op.consumes).toContain('application/json');
      else expect(op.consumes.some((c) => /x-tar|octet-stream|text\/plain/.test(c))).toBe(true);
    },
  );

  it('has no action beyond the specifications except the documented undocumented routes', () => {
    const documented = new Set(SPEC_OPS.map((op) => `${op.method} ${op.path}`));
    const extra = ACTIONS.filter((a) => !documented.has(`${a.method} ${a.path}`)).map((a) => a.name);
    expect(extra.sort()).toEqual([...UNDOCUMENTED].sort());
  });

  it.each(ACTIONS.filter((a) => UNDOCUMENTED.includes(a.name)))(
    'undocumented $name ($operationId) follows the naming rule and the target rule',
    (action) => {
      expect(action.name).toBe(expectedName(action.operationId));
      expect(action.target).toBe(expectedTarget(action.path));
    },
  );
});

describe('the catalogue has no collisions', () => {
  it('names are unique, and none is "unknown"', () => {
    const names = ACTIONS.map((a) => a.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names).not.toContain(UNKNOWN_ACTION);
    expect(ACTIONS_BY_NAME.size).toBe(names.length);
  });

  it('method + path pairs are unique', () => {
    const routes = ACTIONS.map((a) => `${a.method} ${a.path}`);
    expect(new Set(routes).size).toBe(routes.length);
  });

  it('operationIds are unique', () => {
    const ids = ACTIONS.map((a) => a.operationId);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('the table cannot be changed at run time', () => {
    const first = ACTIONS[0] as { name: string };
    expect(() => {
      first.name = 'container.everything';
    }).toThrow(TypeError);
    expect(Object.isFrozen(ACTIONS)).toBe(true);
  });
});

describe('the dockerd route table and the catalogue describe the same operations', () => {
  /** Routes that are a second way to reach an action (dockerd registers both). */
  const ALIASES = new Set(['GET /networks/']);

  it.each(DOCKERD_ROUTES.map(([method, template, action]) => ({ method, template, action })))(
    'route $method $template is the path of $action',
    ({ method, template, action }) => {
      const entry = ACTIONS_BY_NAME.get(action);
      expect(entry).toBeDefined();
      const withoutPatterns = template.replace(/\{([^}:]+):[^}]+\}/g, '{$1}');
      if (ALIASES.has(`${method} ${template}`)) {
        expect(entry!.method).toBe(method);
      } else {
        expect(`${method} ${withoutPatterns}`).toBe(`${entry!.method} ${entry!.path}`);
      }
    },
  );

  it('every action is reachable through exactly one non-alias route', () => {
    const counts = new Map<string, number>();
    for (const [method, template, action] of DOCKERD_ROUTES) {
      if (!ALIASES.has(`${method} ${template}`)) counts.set(action, (counts.get(action) ?? 0) + 1);
    }
    expect(ACTIONS.filter((a) => counts.get(a.name) !== 1).map((a) => a.name)).toEqual([]);
  });
});

// --- every documented path shape, filled with realistic values, classifies to its action ---

const SWARM_ID = 'x8ws4zf1qa9kq7wcdl7tr3kmj';
const HEX_ID = '4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a';
/** Realistic values per parameter. Image and plugin names carry `/`, `:` and `@`. */
const IMAGE_NAMES = ['busybox:local', 'registry.example.com:5000/team/app:1.0', `alpine@sha256:${HEX_ID}`];
const FILLS: Readonly<Record<string, readonly string[]>> = {
  'containers.id': ['f2a1c9e0b7d4', 'web_1', HEX_ID],
  'exec.id': [HEX_ID],
  'images.name': IMAGE_NAMES,
  'distribution.name': IMAGE_NAMES,
  'plugins.name': ['vieux/sshfs:latest', 'registry.example.com:5000/team/plugin:1.0'],
  'volumes.name': ['data-vol', HEX_ID],
  'networks.id': ['backend', HEX_ID],
  'services.id': [SWARM_ID, 'web'],
  'tasks.id': [SWARM_ID],
  'nodes.id': [SWARM_ID, 'worker-1'],
  'secrets.id': [SWARM_ID],
  'configs.id': [SWARM_ID],
  'containers.checkpoint': ['checkpoint-1'],
};

interface Sample {
  readonly label: string;
  readonly method: string;
  readonly url: string;
  readonly action: string;
  readonly params: Readonly<Record<string, string>>;
}

function samples(): Sample[] {
  const out: Sample[] = [];
  for (const action of ACTIONS) {
    const collection = action.path.split('/')[1]!;
    const names = [...action.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
    const variants = Math.max(1, ...names.map((n) => FILLS[`${collection}.${n}`]?.length ?? 1));
    for (let v = 0; v < variants; v++) {
      const params: Record<string, string> = {};
      for (const n of names) {
        const values = FILLS[`${collection}.${n}`];
        if (values === undefined) throw new Error(`no sample values for {${n}} of /${collection}`);
        params[n] = values[v % values.length]!;
      }
      const fill = (encode: (s: string) => string): string =>
        action.path.replace(/\{([^}]+)\}/g, (_, n: string) => encode(params[n]!));
      for (const prefix of ['', '/v1.41']) {
        // As the Go client sends it (raw `/`, `:` and `@`), and fully percent-encoded:
        // dockerd routes the decoded path, so both must land on the same action.
        out.push({ label: 'raw', method: action.method, url: prefix + fill((s) => s), action: action.name, params });
        if (names.length > 0) {
          out.push({ label: 'encoded', method: action.method, url: prefix + fill(encodeURIComponent), action: action.name, params });
        }
      }
    }
  }
  return out;
}

describe('a concrete request for every documented path classifies to its action', () => {
  it.each(samples())('$method $url ($label) -> $action', (sample) => {
    const canonical = canonicalise(sample.url);
    expect(canonical.ok).toBe(true);
    if (!canonical.ok) return;
    expect(canonical.request.apiVersion).toBe(sample.url.startsWith('/v1.41/') ? '1.41' : undefined);
    expect(classify(sample.method, canonical.request.path)).toEqual({
      action: sample.action,
      params: sample.params,
    });
  });
});
