/**
 * Classify a canonical request path into a catalogue action, the way dockerd's router picks
 * a handler.
 *
 * dockerd (moby daemon/server/server.go `CreateMux`) registers, router by router and route by
 * route, `m.Path(versionMatcher + path).Methods(method)` and `m.Path(path).Methods(method)`
 * on one gorilla/mux router. gorilla/mux tries routes in registration order; the first whose
 * path regexp AND method both match wins. A path match with the wrong method is a
 * "method mismatch", which dockerd answers 404 like an unknown path. There is no implicit
 * HEAD-for-GET: only `HEAD /_ping` and `HEAD /containers/{id}/archive` are routed.
 *
 * Path templates compile like gorilla/mux `newRouteRegexp`: anchored `^...$`, a bare
 * `{var}` is `[^/]+`, `{var:pattern}` uses the pattern. dockerd uses greedy `.*` for most
 * names (an image name holds `/` and `:`), so `POST /containers/a/b/kill` kills container
 * `a/b` and `DELETE /containers/x/checkpoints/y` would delete a container if the checkpoint
 * routes were not registered first. Go's `.` does not match `\n`; neither does ours.
 *
 * Because the canonical path has its version prefix removed, and no unversioned route starts
 * with `/v<digits>`, matching the version-less path against version-less templates picks the
 * same route dockerd picks for either form.
 */
import type { Classification } from '../types.js';
import { ACTIONS_BY_NAME, UNKNOWN_ACTION } from './catalogue.js';

/** `[method, dockerd path template (catalogue parameter names), action]`. */
export type DockerdRoute = readonly [method: string, template: string, action: string];

/**
 * dockerd's routes in registration order (moby daemon/command `buildRouters`, newest, and
 * cmd/dockerd/daemon.go `initRouter` of 20.10: the same order for every router that has
 * overlapping paths). Templates keep dockerd's patterns but use the specification's
 * parameter names, so that stripping `:pattern` gives the catalogue path.
 *
 * Not listed, so `unknown`: `OPTIONS /{anyroute:.*}` (the system router's CORS answer) and
 * `/debug/vars`, `/debug/pprof/*` (20.10 routes them unversioned for ANY method; they expose
 * the daemon's command line, memory and CPU profiles).
 */
export const DOCKERD_ROUTES: readonly DockerdRoute[] = [
  // checkpoint router (daemon/server/router/checkpoint/checkpoint.go): registered before the
  // container router "or the DELETE gets masked".
  ['GET', '/containers/{id:.*}/checkpoints', 'checkpoint.list'],
  ['POST', '/containers/{id:.*}/checkpoints', 'checkpoint.create'],
  ['DELETE', '/containers/{id}/checkpoints/{checkpoint}', 'checkpoint.delete'],

  // container router (daemon/server/router/container/container.go)
  ['HEAD', '/containers/{id:.*}/archive', 'container.archive.info'],
  ['GET', '/containers/json', 'container.list'],
  ['GET', '/containers/{id:.*}/export', 'container.export'],
  ['GET', '/containers/{id:.*}/changes', 'container.changes'],
  ['GET', '/containers/{id:.*}/json', 'container.inspect'],
  ['GET', '/containers/{id:.*}/top', 'container.top'],
  ['GET', '/containers/{id:.*}/logs', 'container.logs'],
  ['GET', '/containers/{id:.*}/stats', 'container.stats'],
  ['GET', '/containers/{id:.*}/attach/ws', 'container.attach.websocket'],
  ['GET', '/exec/{id:.*}/json', 'exec.inspect'],
  ['GET', '/containers/{id:.*}/archive', 'container.archive'],
  ['POST', '/containers/create', 'container.create'],
  ['POST', '/containers/{id:.*}/kill', 'container.kill'],
  ['POST', '/containers/{id:.*}/pause', 'container.pause'],
  ['POST', '/containers/{id:.*}/unpause', 'container.unpause'],
  ['POST', '/containers/{id:.*}/restart', 'container.restart'],
  ['POST', '/containers/{id:.*}/start', 'container.start'],
  ['POST', '/containers/{id:.*}/stop', 'container.stop'],
  ['POST', '/containers/{id:.*}/wait', 'container.wait'],
  ['POST', '/containers/{id:.*}/resize', 'container.resize'],
  ['POST', '/containers/{id:.*}/attach', 'container.attach'],
  ['POST', '/containers/{id:.*}/copy', 'container.copy'], // dockerd < 26 (moby#47155)
  ['POST', '/containers/{id:.*}/exec', 'container.exec'],
  ['POST', '/exec/{id:.*}/start', 'exec.start'],
  ['POST', '/exec/{id:.*}/resize', 'exec.resize'],
  ['POST', '/containers/{id:.*}/rename', 'container.rename'],
  ['POST', '/containers/{id:.*}/update', 'container.update'],
  ['POST', '/containers/prune', 'container.prune'],
  ['POST', '/commit', 'image.commit'],
  ['PUT', '/containers/{id:.*}/archive', 'container.archive.put'],
  ['DELETE', '/containers/{id:.*}', 'container.delete'],

  // image router (daemon/server/router/image/image.go)
  ['GET', '/images/json', 'image.list'],
  ['GET', '/images/search', 'image.search'],
  ['GET', '/images/get', 'image.get.all'],
  ['GET', '/images/{name:.*}/get', 'image.get'],
  ['GET', '/images/{name:.*}/history', 'image.history'],
  ['GET', '/images/{name:.*}/json', 'image.inspect'],
  // API 1.56 (not in the moby source we could read): assumed to follow the pattern of its
  // neighbours. No other GET image route ends in `/attestations`, so the order is moot.
  ['GET', '/images/{name:.*}/attestations', 'image.attestations'],
  ['POST', '/images/load', 'image.load'],
  ['POST', '/images/create', 'image.create'],
  ['POST', '/images/{name:.*}/push', 'image.push'],
  ['POST', '/images/{name:.*}/tag', 'image.tag'],
  ['POST', '/images/prune', 'image.prune'],
  ['DELETE', '/images/{name:.*}', 'image.delete'],

  // system router (daemon/server/router/system/system.go)
  ['GET', '/_ping', 'system.ping'],
  ['HEAD', '/_ping', 'system.ping.head'],
  ['GET', '/events', 'system.events'],
  ['GET', '/info', 'system.info'],
  ['GET', '/version', 'system.version'],
  ['GET', '/system/df', 'system.data.usage'],
  ['POST', '/auth', 'system.auth'],

  // volume router (daemon/server/router/volume/volume.go)
  ['GET', '/volumes', 'volume.list'],
  ['GET', '/volumes/{name:.*}', 'volume.inspect'],
  ['POST', '/volumes/create', 'volume.create'],
  ['POST', '/volumes/prune', 'volume.prune'],
  ['PUT', '/volumes/{name:.*}', 'volume.update'],
  ['DELETE', '/volumes/{name:.*}', 'volume.delete'],

  // build router (daemon/server/router/build/build.go)
  ['POST', '/build', 'image.build'],
  ['POST', '/build/prune', 'build.prune'],
  ['POST', '/build/cancel', 'build.cancel'],

  // session router (daemon/server/router/session/session.go)
  ['POST', '/session', 'session'],

  // swarm router (daemon/server/router/swarm/cluster.go): plain `{id}`, one segment.
  ['POST', '/swarm/init', 'swarm.init'],
  ['POST', '/swarm/join', 'swarm.join'],
  ['POST', '/swarm/leave', 'swarm.leave'],
  ['GET', '/swarm', 'swarm.inspect'],
  ['GET', '/swarm/unlockkey', 'swarm.unlockkey'],
  ['POST', '/swarm/update', 'swarm.update'],
  ['POST', '/swarm/unlock', 'swarm.unlock'],
  ['GET', '/services', 'service.list'],
  ['GET', '/services/{id}', 'service.inspect'],
  ['POST', '/services/create', 'service.create'],
  ['POST', '/services/{id}/update', 'service.update'],
  ['DELETE', '/services/{id}', 'service.delete'],
  ['GET', '/services/{id}/logs', 'service.logs'],
  ['GET', '/nodes', 'node.list'],
  ['GET', '/nodes/{id}', 'node.inspect'],
  ['DELETE', '/nodes/{id}', 'node.delete'],
  ['POST', '/nodes/{id}/update', 'node.update'],
  ['GET', '/tasks', 'task.list'],
  ['GET', '/tasks/{id}', 'task.inspect'],
  ['GET', '/tasks/{id}/logs', 'task.logs'],
  ['GET', '/secrets', 'secret.list'],
  ['POST', '/secrets/create', 'secret.create'],
  ['DELETE', '/secrets/{id}', 'secret.delete'],
  ['GET', '/secrets/{id}', 'secret.inspect'],
  ['POST', '/secrets/{id}/update', 'secret.update'],
  ['GET', '/configs', 'config.list'],
  ['POST', '/configs/create', 'config.create'],
  ['DELETE', '/configs/{id}', 'config.delete'],
  ['GET', '/configs/{id}', 'config.inspect'],
  ['POST', '/configs/{id}/update', 'config.update'],

  // plugin router (daemon/server/router/plugin/plugin.go)
  ['GET', '/plugins', 'plugin.list'],
  ['GET', '/plugins/{name:.*}/json', 'plugin.inspect'],
  ['GET', '/plugins/privileges', 'plugin.privileges'],
  ['DELETE', '/plugins/{name:.*}', 'plugin.delete'],
  ['POST', '/plugins/{name:.*}/enable', 'plugin.enable'],
  ['POST', '/plugins/{name:.*}/disable', 'plugin.disable'],
  ['POST', '/plugins/pull', 'plugin.pull'],
  ['POST', '/plugins/{name:.*}/push', 'plugin.push'],
  ['POST', '/plugins/{name:.*}/upgrade', 'plugin.upgrade'],
  ['POST', '/plugins/{name:.*}/set', 'plugin.set'],
  ['POST', '/plugins/create', 'plugin.create'],

  // distribution router (daemon/server/router/distribution/distribution.go)
  ['GET', '/distribution/{name:.*}/json', 'distribution.inspect'],

  // network router (daemon/server/router/network/network.go). `GET /networks/` is a second
  // list route (the canonicaliser refuses trailing slashes, so only a direct caller of
  // classify() reaches it); `{id:.+}` makes `GET /networks/a/b` inspect network `a/b`.
  ['GET', '/networks', 'network.list'],
  ['GET', '/networks/', 'network.list'],
  ['GET', '/networks/{id:.+}', 'network.inspect'],
  ['POST', '/networks/create', 'network.create'],
  ['POST', '/networks/{id:.*}/connect', 'network.connect'],
  ['POST', '/networks/{id:.*}/disconnect', 'network.disconnect'],
  ['POST', '/networks/prune', 'network.prune'],
  ['DELETE', '/networks/{id:.*}', 'network.delete'],

  // grpc router (daemon/server/router/grpc/grpc.go)
  ['POST', '/grpc', 'grpc'],
];

interface CompiledRoute {
  /** The template itself when it has no parameters: compared, not matched. */
  readonly literal: string | undefined;
  /** The literal text after the last parameter: a cheap test before the regexp. */
  readonly suffix: string;
  readonly regex: RegExp;
  readonly params: readonly string[];
  readonly action: string;
}

const UNKNOWN: Classification = Object.freeze({ action: UNKNOWN_ACTION, params: Object.freeze({}) });

/**
 * method -> first path segment -> routes in dockerd order. Every template starts with a
 * literal segment, so a path can only match routes of its own first segment; the bucket keeps
 * the per-request work to a handful of precompiled regexps.
 */
const ROUTES_BY_METHOD_AND_SEGMENT: ReadonlyMap<string, ReadonlyMap<string, readonly CompiledRoute[]>> =
  compileRoutes(DOCKERD_ROUTES);

/**
 * `path` is a canonical, version-less path (canonical.ts). Method names are compared
 * exactly, as gorilla/mux does: `get` is not `GET`.
 */
export function classify(method: string, path: string): Classification {
  if (path.charCodeAt(0) !== 0x2f /* / */) return UNKNOWN;
  const segmentEnd = path.indexOf('/', 1);
  const first = segmentEnd < 0 ? path.slice(1) : path.slice(1, segmentEnd);
  const routes = ROUTES_BY_METHOD_AND_SEGMENT.get(method)?.get(first);
  if (routes === undefined) return UNKNOWN;
  for (const route of routes) {
    if (route.literal !== undefined) {
      if (path === route.literal) return { action: route.action, params: {} };
      continue;
    }
    if (!path.endsWith(route.suffix)) continue;
    const match = route.regex.exec(path);
    if (match === null) continue;
    const params: Record<string, string> = {};
    for (let i = 0; i < route.params.length; i++) params[route.params[i]!] = match[i + 1]!;
    return { action: route.action, params };
  }
  return UNKNOWN;
}

function compileRoutes(rows: readonly DockerdRoute[]): Map<string, Map<string, CompiledRoute[]>> {
  const byMethod = new Map<string, Map<string, CompiledRoute[]>>();
  for (const [method, template, action] of rows) {
    // A route naming an action the catalogue lacks would classify into a name no policy can
    // be checked against: refuse to load.
    if (!ACTIONS_BY_NAME.has(action)) throw new Error(`docker routes: unknown action ${action}`);
    const { regex, params, firstSegment } = compileTemplate(template);
    const literal = params.length === 0 ? template : undefined;
    const suffix = template.slice(template.lastIndexOf('}') + 1);
    let bySegment = byMethod.get(method);
    if (bySegment === undefined) byMethod.set(method, (bySegment = new Map()));
    let list = bySegment.get(firstSegment);
    if (list === undefined) bySegment.set(firstSegment, (list = []));
    list.push({ literal, suffix, regex, params, action });
  }
  return byMethod;
}

/** gorilla/mux `newRouteRegexp` for path templates, restricted to the patterns dockerd uses. */
export function compileTemplate(template: string): { regex: RegExp; params: string[]; firstSegment: string } {
  const firstSegment = /^\/([^/{}]*)(?:\/|$)/.exec(template)?.[1];
  if (firstSegment === undefined || firstSegment === '') {
    throw new Error(`docker routes: template ${template} must start with a literal segment`);
  }
  const params: string[] = [];
  let source = '^';
  let rest = template;
  for (let open = rest.indexOf('{'); open >= 0; open = rest.indexOf('{')) {
    const close = rest.indexOf('}', open);
    if (close < 0) throw new Error(`docker routes: unbalanced braces in ${template}`);
    const variable = rest.slice(open + 1, close);
    const colon = variable.indexOf(':');
    const name = colon < 0 ? variable : variable.slice(0, colon);
    const pattern = colon < 0 ? undefined : variable.slice(colon + 1);
    source += escapeRegExp(rest.slice(0, open)) + '(' + translatePattern(pattern, template) + ')';
    params.push(name);
    rest = rest.slice(close + 1);
  }
  source += escapeRegExp(rest) + '$';
  return { regex: new RegExp(source), params, firstSegment };
}

function translatePattern(pattern: string | undefined, template: string): string {
  switch (pattern) {
    case undefined:
      return '[^/]+'; // gorilla/mux default for a path variable
    case '.*':
      return '[^\\n]*'; // Go's `.` without the `s` flag: anything but a newline
    case '.+':
      return '[^\\n]+';
    default:
      throw new Error(`docker routes: unsupported pattern ${pattern} in ${template}`);
  }
}

function escapeRegExp(literal: string): string {
  return literal.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
