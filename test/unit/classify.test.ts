/**
 * classify() picks the action dockerd's router would pick for a canonical path. Rows marked
 * "dockerd:" state what dockerd 20.10.24 did with the same request.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ACTIONS_BY_NAME } from '../../src/docker/catalogue.js';
import { canonicalise } from '../../src/docker/canonical.js';
import { classify, compileTemplate } from '../../src/docker/classify.js';

interface Row {
  readonly name: string;
  readonly method: string;
  readonly path: string;
  readonly action: string;
  readonly params?: Readonly<Record<string, string>>;
}

function expectClassified({ method, path, action, params }: Row): void {
  expect(classify(method, path)).toEqual({ action, params: params ?? {} });
}

describe('literal routes win over the greedy {name:.*} routes registered after them', () => {
  it.each<Row>([
    { name: 'image list', method: 'GET', path: '/images/json', action: 'image.list' },
    { name: 'image search', method: 'GET', path: '/images/search', action: 'image.search' },
    { name: 'image prune', method: 'POST', path: '/images/prune', action: 'image.prune' },
    { name: 'save all images', method: 'GET', path: '/images/get', action: 'image.get.all' },
    { name: 'image load', method: 'POST', path: '/images/load', action: 'image.load' },
    { name: 'image pull', method: 'POST', path: '/images/create', action: 'image.create' },
    { name: 'container list', method: 'GET', path: '/containers/json', action: 'container.list' },
    { name: 'container create', method: 'POST', path: '/containers/create', action: 'container.create' },
    { name: 'container prune', method: 'POST', path: '/containers/prune', action: 'container.prune' },
    { name: 'plugin privileges', method: 'GET', path: '/plugins/privileges', action: 'plugin.privileges' },
    { name: 'plugin pull', method: 'POST', path: '/plugins/pull', action: 'plugin.pull' },
    { name: 'network create', method: 'POST', path: '/networks/create', action: 'network.create' },
    { name: 'volume create', method: 'POST', path: '/volumes/create', action: 'volume.create' },
  ])('$name: $method $path', expectClassified);
});

describe('names are read with dockerd\'s greedy patterns', () => {
  it.each<Row>([
    { name: 'image called "json" (dockerd: no such image json)', method: 'GET', path: '/images/json/json', action: 'image.inspect', params: { name: 'json' } },
    { name: 'DELETE of an image called "prune"', method: 'DELETE', path: '/images/prune', action: 'image.delete', params: { name: 'prune' } },
    { name: 'registry image with port and tag', method: 'GET', path: '/images/registry.example.com:5000/team/app:1.0/json', action: 'image.inspect', params: { name: 'registry.example.com:5000/team/app:1.0' } },
    { name: 'push of a registry image', method: 'POST', path: '/images/registry.example.com:5000/team/app:1.0/push', action: 'image.push', params: { name: 'registry.example.com:5000/team/app:1.0' } },
    { name: 'the greedy name takes the longest prefix', method: 'GET', path: '/images/a/json/history', action: 'image.history', params: { name: 'a/json' } },
    { name: 'image delete of a multi-segment name', method: 'DELETE', path: '/images/registry.example.com:5000/team/app:1.0', action: 'image.delete', params: { name: 'registry.example.com:5000/team/app:1.0' } },
    { name: 'distribution lookup', method: 'GET', path: '/distribution/registry.example.com:5000/team/app:1.0/json', action: 'distribution.inspect', params: { name: 'registry.example.com:5000/team/app:1.0' } },
    { name: 'plugin with a registry name', method: 'POST', path: '/plugins/vieux/sshfs:latest/enable', action: 'plugin.enable', params: { name: 'vieux/sshfs:latest' } },
    { name: 'container ids are greedy too (dockerd: "No such container: a/b")', method: 'POST', path: '/containers/a/b/kill', action: 'container.kill', params: { id: 'a/b' } },
    { name: 'container delete swallows every segment (dockerd: "No such container: a/b")', method: 'DELETE', path: '/containers/a/b', action: 'container.delete', params: { id: 'a/b' } },
    { name: 'container named like a route', method: 'GET', path: '/containers/json/json', action: 'container.inspect', params: { id: 'json' } },
    { name: 'volume names are greedy (dockerd: "get a/b: no such volume")', method: 'DELETE', path: '/volumes/a/b', action: 'volume.delete', params: { name: 'a/b' } },
    { name: 'network inspect is {id:.+} (dockerd: "network create not found")', method: 'GET', path: '/networks/create', action: 'network.inspect', params: { id: 'create' } },
    { name: 'network inspect over several segments', method: 'GET', path: '/networks/a/b', action: 'network.inspect', params: { id: 'a/b' } },
    { name: 'network connect with a greedy id', method: 'POST', path: '/networks/a/b/connect', action: 'network.connect', params: { id: 'a/b' } },
    { name: 'exec ids are greedy', method: 'POST', path: '/exec/a/b/start', action: 'exec.start', params: { id: 'a/b' } },
    { name: 'GET /networks/ lists (a route of its own in dockerd)', method: 'GET', path: '/networks/', action: 'network.list' },
  ])('$name: $method $path', expectClassified);
});

describe('swarm routes take one segment ({id} is [^/]+)', () => {
  it.each<Row>([
    { name: 'service inspect', method: 'GET', path: '/services/web', action: 'service.inspect', params: { id: 'web' } },
    { name: 'service logs', method: 'GET', path: '/services/web/logs', action: 'service.logs', params: { id: 'web' } },
    { name: 'a / in a service id matches nothing (dockerd: 404)', method: 'GET', path: '/services/a/b', action: 'unknown' },
    { name: 'a / in a node id matches nothing', method: 'DELETE', path: '/nodes/a/b', action: 'unknown' },
    { name: 'secret update', method: 'POST', path: '/secrets/s1/update', action: 'secret.update', params: { id: 's1' } },
    { name: 'task logs', method: 'GET', path: '/tasks/t1/logs', action: 'task.logs', params: { id: 't1' } },
  ])('$name: $method $path', expectClassified);
});

describe('router order: checkpoints are registered before containers', () => {
  it.each<Row>([
    { name: 'checkpoint delete is not a container delete (dockerd: 501 experimental)', method: 'DELETE', path: '/containers/web/checkpoints/cp1', action: 'checkpoint.delete', params: { id: 'web', checkpoint: 'cp1' } },
    { name: 'checkpoint list', method: 'GET', path: '/containers/web/checkpoints', action: 'checkpoint.list', params: { id: 'web' } },
    { name: 'checkpoint create', method: 'POST', path: '/containers/web/checkpoints', action: 'checkpoint.create', params: { id: 'web' } },
    { name: 'a multi-segment container with checkpoints falls through to container delete', method: 'DELETE', path: '/containers/a/b/checkpoints/cp1', action: 'container.delete', params: { id: 'a/b/checkpoints/cp1' } },
  ])('$name: $method $path', expectClassified);
});

describe('methods must match exactly; HEAD is not GET', () => {
  it.each<Row>([
    { name: 'HEAD /_ping has its own route', method: 'HEAD', path: '/_ping', action: 'system.ping.head' },
    { name: 'GET /_ping', method: 'GET', path: '/_ping', action: 'system.ping' },
    { name: 'HEAD of the archive route', method: 'HEAD', path: '/containers/web/archive', action: 'container.archive.info', params: { id: 'web' } },
    { name: 'HEAD on a GET route (dockerd: 404)', method: 'HEAD', path: '/containers/json', action: 'unknown' },
    { name: 'HEAD /version (dockerd: 404)', method: 'HEAD', path: '/version', action: 'unknown' },
    { name: 'GET on a POST route (dockerd: 404)', method: 'GET', path: '/containers/web/kill', action: 'unknown' },
    { name: 'PUT on a POST route', method: 'PUT', path: '/containers/web/kill', action: 'unknown' },
    { name: 'lower-case method (dockerd: 404)', method: 'get', path: '/_ping', action: 'unknown' },
    { name: 'PATCH is never routed', method: 'PATCH', path: '/containers/web', action: 'unknown' },
    { name: 'OPTIONS (dockerd answers CORS itself; not an action)', method: 'OPTIONS', path: '/containers/json', action: 'unknown' },
    { name: 'archive GET', method: 'GET', path: '/containers/web/archive', action: 'container.archive', params: { id: 'web' } },
    { name: 'archive PUT', method: 'PUT', path: '/containers/web/archive', action: 'container.archive.put', params: { id: 'web' } },
    { name: 'volume update is PUT', method: 'PUT', path: '/volumes/data', action: 'volume.update', params: { name: 'data' } },
  ])('$name: $method $path', expectClassified);
});

describe('streams, hijacks and the routes no specification documents', () => {
  it.each<Row>([
    { name: 'attach', method: 'POST', path: '/containers/web/attach', action: 'container.attach', params: { id: 'web' } },
    { name: 'attach over websocket', method: 'GET', path: '/containers/web/attach/ws', action: 'container.attach.websocket', params: { id: 'web' } },
    { name: 'exec create', method: 'POST', path: '/containers/web/exec', action: 'container.exec', params: { id: 'web' } },
    { name: 'exec start', method: 'POST', path: '/exec/4f3a/start', action: 'exec.start', params: { id: '4f3a' } },
    { name: 'BuildKit session', method: 'POST', path: '/session', action: 'session' },
    { name: 'BuildKit gRPC (dockerd: "no upgrade proto in request")', method: 'POST', path: '/grpc', action: 'grpc' },
    { name: 'build cancel (dockerd: 200)', method: 'POST', path: '/build/cancel', action: 'build.cancel' },
    { name: 'legacy copy (dockerd 20.10 runs it for API < 1.24)', method: 'POST', path: '/containers/web/copy', action: 'container.copy', params: { id: 'web' } },
    { name: 'commit', method: 'POST', path: '/commit', action: 'image.commit' },
  ])('$name: $method $path', expectClassified);
});

describe('what dockerd does not route, or must stay unknown, is unknown', () => {
  it.each<Row>([
    { name: 'the root path', method: 'GET', path: '/', action: 'unknown' },
    { name: 'upper-case collection (dockerd: 404)', method: 'GET', path: '/Containers/json', action: 'unknown' },
    { name: 'upper-case _ping (dockerd: 404)', method: 'GET', path: '/_PING', action: 'unknown' },
    { name: 'a versioned path is not canonical', method: 'GET', path: '/v1.41/_ping', action: 'unknown' },
    { name: 'a second version prefix (dockerd: 404)', method: 'GET', path: '/v1.40/_ping', action: 'unknown' },
    { name: 'the bare collection (dockerd: 404)', method: 'GET', path: '/containers', action: 'unknown' },
    { name: 'no such sub-resource', method: 'POST', path: '/containers/web/explode', action: 'unknown' },
    { name: 'no pull for one plugin', method: 'POST', path: '/plugins/x/pull', action: 'unknown' },
    { name: 'pprof (dockerd 20.10: routed for ANY method, leaks the command line)', method: 'GET', path: '/debug/pprof/cmdline', action: 'unknown' },
    { name: 'expvar (dockerd 20.10: routed for ANY method)', method: 'POST', path: '/debug/vars', action: 'unknown' },
    { name: 'no leading slash', method: 'GET', path: '_ping', action: 'unknown' },
    { name: 'empty path', method: 'GET', path: '', action: 'unknown' },
    { name: 'a newline never matches Go\'s "."', method: 'POST', path: '/containers/a\nb/kill', action: 'unknown' },
    { name: 'object-prototype names are not methods', method: 'constructor', path: '/_ping', action: 'unknown' },
    { name: 'object-prototype names are not segments', method: 'GET', path: '/__proto__/x', action: 'unknown' },
  ])('$name: $method $path', expectClassified);
});

describe('canonicalise + classify: what a client sends, what the policy sees', () => {
  it.each([
    { name: '%2F reaches kill, as in dockerd (dockerd: "Cannot kill container: x")', method: 'POST', url: '/v1.41/containers/x%2Fkill', action: 'container.kill', params: { id: 'x' } },
    { name: 'an encoded slash inside an image name', method: 'POST', url: '/images/registry.example.com%3A5000%2Fteam%2Fapp/push', action: 'image.push', params: { name: 'registry.example.com:5000/team/app' } },
    { name: 'an encoded route word is still that route', method: 'POST', url: '/containers/x/%6Bill', action: 'container.kill', params: { id: 'x' } },
    { name: 'the docker CLI\'s first request', method: 'HEAD', url: '/_ping', action: 'system.ping.head', params: {} },
    { name: 'docker stop', method: 'POST', url: '/v1.41/containers/web/stop?t=10', action: 'container.stop', params: { id: 'web' } },
  ])('$name: $method $url', ({ method, url, action, params }) => {
    const canonical = canonicalise(url);
    expect(canonical.ok).toBe(true);
    if (!canonical.ok) return;
    expect(classify(method, canonical.request.path)).toEqual({ action, params });
  });
});

describe('classify is total', () => {
  it('returns a catalogue action or unknown for any method and path', () => {
    const segment = fc.constantFrom('containers', 'images', 'json', 'kill', 'x', 'a:b', '', '.*', 'networks', '_ping', 'v1.41');
    const paths = fc.array(segment, { maxLength: 6 }).map((s) => `/${s.join('/')}`);
    const methods = fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'get', '__proto__');
    fc.assert(
      fc.property(methods, fc.oneof(paths, fc.string()), (method, path) => {
        const { action } = classify(method, path);
        expect(action === 'unknown' || ACTIONS_BY_NAME.get(action)?.method === method).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('the unknown answer cannot be altered by a caller', () => {
    const unknown = classify('GET', '/nope');
    expect(() => {
      (unknown.params as Record<string, string>)['id'] = 'x';
    }).toThrow(TypeError);
    expect(classify('GET', '/nope').params).toEqual({});
  });
});

describe('route templates compile like gorilla/mux', () => {
  it.each([
    { template: '/containers/{id:.*}/kill', path: '/containers/a/b/kill', params: ['a/b'] },
    { template: '/services/{id}', path: '/services/a/b', params: null },
    { template: '/networks/{id:.+}', path: '/networks/', params: null },
    { template: '/containers/{id}/checkpoints/{checkpoint}', path: '/containers/c/checkpoints/k', params: ['c', 'k'] },
    { template: '/images/{name:.*}/json', path: '/images/a.b/json', params: ['a.b'] },
    { template: '/_ping', path: '/_xping', params: null }, // literal text is escaped
  ])('$template on $path', ({ template, path, params }) => {
    const match = compileTemplate(template).regex.exec(path);
    expect(match === null ? null : match.slice(1)).toEqual(params);
  });

  it.each(['/containers/{id:[a-f0-9]+}/kill', '/{collection}/json', '/containers/{id'])(
    'refuses a template it cannot reproduce faithfully: %s',
    (template) => {
      expect(() => compileTemplate(template)).toThrow(/docker routes/);
    },
  );
});
