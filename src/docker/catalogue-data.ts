/**
 * The Docker action table: one row per Engine API operation.
 *
 * Generated once from shared/docker-api/v1.41.yaml and v1.56.yaml (swagger `operationId`,
 * method, path, `in: body` parameter, `101` response), then maintained by hand. The runtime
 * never reads the specifications: they are not shipped. test/unit/catalogue.test.ts re-reads
 * both specifications and fails when this table and a specification disagree.
 *
 * Naming (docs: policy-language.md "Actions"): the operationId split at capitals,
 * lower-cased, dot-joined; `PutContainerArchive` and `GetPluginPrivileges` are reordered
 * so that the noun comes first.
 *
 * Body kinds follow the specification's `in: body` parameter: a `type: string` body
 * (tar archives, build contexts, image imports) is `stream`, a schema body is `json`, no body
 * parameter is `none` (the gateway refuses a body on those). Deviations are commented.
 */
import type { ActionDef } from '../types.js';

/** Operations of the Engine API specifications (v1.41 and v1.56), in specification order. */
export const SPEC_ACTIONS: readonly ActionDef[] = [
  { name: 'container.list', operationId: 'ContainerList', method: 'GET', path: '/containers/json', body: 'none' },
  { name: 'container.create', operationId: 'ContainerCreate', method: 'POST', path: '/containers/create', body: 'json' },
  { name: 'container.inspect', operationId: 'ContainerInspect', method: 'GET', path: '/containers/{id}/json', body: 'none', target: 'container' },
  { name: 'container.top', operationId: 'ContainerTop', method: 'GET', path: '/containers/{id}/top', body: 'none', target: 'container' },
  { name: 'container.logs', operationId: 'ContainerLogs', method: 'GET', path: '/containers/{id}/logs', body: 'none', target: 'container' },
  { name: 'container.changes', operationId: 'ContainerChanges', method: 'GET', path: '/containers/{id}/changes', body: 'none', target: 'container' },
  { name: 'container.export', operationId: 'ContainerExport', method: 'GET', path: '/containers/{id}/export', body: 'none', target: 'container' },
  { name: 'container.stats', operationId: 'ContainerStats', method: 'GET', path: '/containers/{id}/stats', body: 'none', target: 'container' },
  { name: 'container.resize', operationId: 'ContainerResize', method: 'POST', path: '/containers/{id}/resize', body: 'none', target: 'container' },
  // The specification documents no body, but API < 1.24 accepted a HostConfig JSON body here
  // and dockerd 20.10 (minimum API 1.12) still applies it for `/v1.23/...` and older
  // (moby api/server/router/container/container_routes.go postContainersStart). `json` makes
  // that body inspectable instead of letting it through unread.
  { name: 'container.start', operationId: 'ContainerStart', method: 'POST', path: '/containers/{id}/start', body: 'json', target: 'container' },
  { name: 'container.stop', operationId: 'ContainerStop', method: 'POST', path: '/containers/{id}/stop', body: 'none', target: 'container' },
  { name: 'container.restart', operationId: 'ContainerRestart', method: 'POST', path: '/containers/{id}/restart', body: 'none', target: 'container' },
  { name: 'container.kill', operationId: 'ContainerKill', method: 'POST', path: '/containers/{id}/kill', body: 'none', target: 'container' },
  { name: 'container.update', operationId: 'ContainerUpdate', method: 'POST', path: '/containers/{id}/update', body: 'json', target: 'container' },
  { name: 'container.rename', operationId: 'ContainerRename', method: 'POST', path: '/containers/{id}/rename', body: 'none', target: 'container' },
  { name: 'container.pause', operationId: 'ContainerPause', method: 'POST', path: '/containers/{id}/pause', body: 'none', target: 'container' },
  { name: 'container.unpause', operationId: 'ContainerUnpause', method: 'POST', path: '/containers/{id}/unpause', body: 'none', target: 'container' },
  { name: 'container.attach', operationId: 'ContainerAttach', method: 'POST', path: '/containers/{id}/attach', body: 'none', target: 'container', hijack: true },
  { name: 'container.attach.websocket', operationId: 'ContainerAttachWebsocket', method: 'GET', path: '/containers/{id}/attach/ws', body: 'none', target: 'container', hijack: true },
  { name: 'container.wait', operationId: 'ContainerWait', method: 'POST', path: '/containers/{id}/wait', body: 'none', target: 'container' },
  { name: 'container.delete', operationId: 'ContainerDelete', method: 'DELETE', path: '/containers/{id}', body: 'none', target: 'container' },
  { name: 'container.archive.info', operationId: 'ContainerArchiveInfo', method: 'HEAD', path: '/containers/{id}/archive', body: 'none', target: 'container' },
  { name: 'container.archive', operationId: 'ContainerArchive', method: 'GET', path: '/containers/{id}/archive', body: 'none', target: 'container' },
  { name: 'container.archive.put', operationId: 'PutContainerArchive', method: 'PUT', path: '/containers/{id}/archive', body: 'stream', target: 'container' },
  { name: 'container.prune', operationId: 'ContainerPrune', method: 'POST', path: '/containers/prune', body: 'none' },
  { name: 'image.list', operationId: 'ImageList', method: 'GET', path: '/images/json', body: 'none' },
  { name: 'image.build', operationId: 'ImageBuild', method: 'POST', path: '/build', body: 'stream' },
  { name: 'build.prune', operationId: 'BuildPrune', method: 'POST', path: '/build/prune', body: 'none' },
  // A pull sends no body; an import (`fromSrc=-`) sends the image tarball.
  { name: 'image.create', operationId: 'ImageCreate', method: 'POST', path: '/images/create', body: 'stream' },
  { name: 'image.inspect', operationId: 'ImageInspect', method: 'GET', path: '/images/{name}/json', body: 'none', target: 'image' },
  { name: 'image.history', operationId: 'ImageHistory', method: 'GET', path: '/images/{name}/history', body: 'none', target: 'image' },
  // dockerd falls back to reading registry credentials from the body when `X-Registry-Auth`
  // is absent (moby postImagesPush "the old format"); clients send the header, so a body is
  // refused rather than buffered (it would hold a password).
  { name: 'image.push', operationId: 'ImagePush', method: 'POST', path: '/images/{name}/push', body: 'none', target: 'image' },
  { name: 'image.tag', operationId: 'ImageTag', method: 'POST', path: '/images/{name}/tag', body: 'none', target: 'image' },
  { name: 'image.delete', operationId: 'ImageDelete', method: 'DELETE', path: '/images/{name}', body: 'none', target: 'image' },
  { name: 'image.search', operationId: 'ImageSearch', method: 'GET', path: '/images/search', body: 'none' },
  { name: 'image.prune', operationId: 'ImagePrune', method: 'POST', path: '/images/prune', body: 'none' },
  { name: 'system.auth', operationId: 'SystemAuth', method: 'POST', path: '/auth', body: 'json' },
  { name: 'system.info', operationId: 'SystemInfo', method: 'GET', path: '/info', body: 'none' },
  { name: 'system.version', operationId: 'SystemVersion', method: 'GET', path: '/version', body: 'none' },
  { name: 'system.ping', operationId: 'SystemPing', method: 'GET', path: '/_ping', body: 'none' },
  { name: 'system.ping.head', operationId: 'SystemPingHead', method: 'HEAD', path: '/_ping', body: 'none' },
  { name: 'image.commit', operationId: 'ImageCommit', method: 'POST', path: '/commit', body: 'json' },
  { name: 'system.events', operationId: 'SystemEvents', method: 'GET', path: '/events', body: 'none' },
  { name: 'system.data.usage', operationId: 'SystemDataUsage', method: 'GET', path: '/system/df', body: 'none' },
  { name: 'image.get', operationId: 'ImageGet', method: 'GET', path: '/images/{name}/get', body: 'none', target: 'image' },
  { name: 'image.get.all', operationId: 'ImageGetAll', method: 'GET', path: '/images/get', body: 'none' },
  { name: 'image.load', operationId: 'ImageLoad', method: 'POST', path: '/images/load', body: 'stream' },
  { name: 'container.exec', operationId: 'ContainerExec', method: 'POST', path: '/containers/{id}/exec', body: 'json', target: 'container' },
  // Answers `101 UPGRADED` when the client asks for an upgrade (the docker CLI always does),
  // although the specification lists only 200.
  { name: 'exec.start', operationId: 'ExecStart', method: 'POST', path: '/exec/{id}/start', body: 'json', target: 'exec', hijack: true },
  { name: 'exec.resize', operationId: 'ExecResize', method: 'POST', path: '/exec/{id}/resize', body: 'none', target: 'exec' },
  { name: 'exec.inspect', operationId: 'ExecInspect', method: 'GET', path: '/exec/{id}/json', body: 'none', target: 'exec' },
  { name: 'volume.list', operationId: 'VolumeList', method: 'GET', path: '/volumes', body: 'none' },
  { name: 'volume.create', operationId: 'VolumeCreate', method: 'POST', path: '/volumes/create', body: 'json' },
  { name: 'volume.inspect', operationId: 'VolumeInspect', method: 'GET', path: '/volumes/{name}', body: 'none', target: 'volume' },
  { name: 'volume.update', operationId: 'VolumeUpdate', method: 'PUT', path: '/volumes/{name}', body: 'json', target: 'volume' }, // not in v1.41
  { name: 'volume.delete', operationId: 'VolumeDelete', method: 'DELETE', path: '/volumes/{name}', body: 'none', target: 'volume' },
  { name: 'volume.prune', operationId: 'VolumePrune', method: 'POST', path: '/volumes/prune', body: 'none' },
  { name: 'network.list', operationId: 'NetworkList', method: 'GET', path: '/networks', body: 'none' },
  { name: 'network.inspect', operationId: 'NetworkInspect', method: 'GET', path: '/networks/{id}', body: 'none', target: 'network' },
  { name: 'network.delete', operationId: 'NetworkDelete', method: 'DELETE', path: '/networks/{id}', body: 'none', target: 'network' },
  { name: 'network.create', operationId: 'NetworkCreate', method: 'POST', path: '/networks/create', body: 'json' },
  { name: 'network.connect', operationId: 'NetworkConnect', method: 'POST', path: '/networks/{id}/connect', body: 'json', target: 'network' },
  { name: 'network.disconnect', operationId: 'NetworkDisconnect', method: 'POST', path: '/networks/{id}/disconnect', body: 'json', target: 'network' },
  { name: 'network.prune', operationId: 'NetworkPrune', method: 'POST', path: '/networks/prune', body: 'none' },
  { name: 'plugin.list', operationId: 'PluginList', method: 'GET', path: '/plugins', body: 'none' },
  { name: 'plugin.privileges', operationId: 'GetPluginPrivileges', method: 'GET', path: '/plugins/privileges', body: 'none' },
  { name: 'plugin.pull', operationId: 'PluginPull', method: 'POST', path: '/plugins/pull', body: 'json' },
  { name: 'plugin.inspect', operationId: 'PluginInspect', method: 'GET', path: '/plugins/{name}/json', body: 'none', target: 'plugin' },
  { name: 'plugin.delete', operationId: 'PluginDelete', method: 'DELETE', path: '/plugins/{name}', body: 'none', target: 'plugin' },
  { name: 'plugin.enable', operationId: 'PluginEnable', method: 'POST', path: '/plugins/{name}/enable', body: 'none', target: 'plugin' },
  { name: 'plugin.disable', operationId: 'PluginDisable', method: 'POST', path: '/plugins/{name}/disable', body: 'none', target: 'plugin' },
  { name: 'plugin.upgrade', operationId: 'PluginUpgrade', method: 'POST', path: '/plugins/{name}/upgrade', body: 'json', target: 'plugin' },
  { name: 'plugin.create', operationId: 'PluginCreate', method: 'POST', path: '/plugins/create', body: 'stream' },
  { name: 'plugin.push', operationId: 'PluginPush', method: 'POST', path: '/plugins/{name}/push', body: 'none', target: 'plugin' },
  { name: 'plugin.set', operationId: 'PluginSet', method: 'POST', path: '/plugins/{name}/set', body: 'json', target: 'plugin' },
  { name: 'node.list', operationId: 'NodeList', method: 'GET', path: '/nodes', body: 'none' },
  { name: 'node.inspect', operationId: 'NodeInspect', method: 'GET', path: '/nodes/{id}', body: 'none', target: 'node' },
  { name: 'node.delete', operationId: 'NodeDelete', method: 'DELETE', path: '/nodes/{id}', body: 'none', target: 'node' },
  { name: 'node.update', operationId: 'NodeUpdate', method: 'POST', path: '/nodes/{id}/update', body: 'json', target: 'node' },
  { name: 'swarm.inspect', operationId: 'SwarmInspect', method: 'GET', path: '/swarm', body: 'none' },
  { name: 'swarm.init', operationId: 'SwarmInit', method: 'POST', path: '/swarm/init', body: 'json' },
  { name: 'swarm.join', operationId: 'SwarmJoin', method: 'POST', path: '/swarm/join', body: 'json' },
  { name: 'swarm.leave', operationId: 'SwarmLeave', method: 'POST', path: '/swarm/leave', body: 'none' },
  { name: 'swarm.update', operationId: 'SwarmUpdate', method: 'POST', path: '/swarm/update', body: 'json' },
  { name: 'swarm.unlockkey', operationId: 'SwarmUnlockkey', method: 'GET', path: '/swarm/unlockkey', body: 'none' },
  { name: 'swarm.unlock', operationId: 'SwarmUnlock', method: 'POST', path: '/swarm/unlock', body: 'json' },
  { name: 'service.list', operationId: 'ServiceList', method: 'GET', path: '/services', body: 'none' },
  { name: 'service.create', operationId: 'ServiceCreate', method: 'POST', path: '/services/create', body: 'json' },
  { name: 'service.inspect', operationId: 'ServiceInspect', method: 'GET', path: '/services/{id}', body: 'none', target: 'service' },
  { name: 'service.delete', operationId: 'ServiceDelete', method: 'DELETE', path: '/services/{id}', body: 'none', target: 'service' },
  { name: 'service.update', operationId: 'ServiceUpdate', method: 'POST', path: '/services/{id}/update', body: 'json', target: 'service' },
  { name: 'service.logs', operationId: 'ServiceLogs', method: 'GET', path: '/services/{id}/logs', body: 'none', target: 'service' },
  { name: 'task.list', operationId: 'TaskList', method: 'GET', path: '/tasks', body: 'none' },
  { name: 'task.inspect', operationId: 'TaskInspect', method: 'GET', path: '/tasks/{id}', body: 'none', target: 'task' },
  { name: 'task.logs', operationId: 'TaskLogs', method: 'GET', path: '/tasks/{id}/logs', body: 'none', target: 'task' },
  { name: 'secret.list', operationId: 'SecretList', method: 'GET', path: '/secrets', body: 'none' },
  { name: 'secret.create', operationId: 'SecretCreate', method: 'POST', path: '/secrets/create', body: 'json' },
  { name: 'secret.inspect', operationId: 'SecretInspect', method: 'GET', path: '/secrets/{id}', body: 'none', target: 'secret' },
  { name: 'secret.delete', operationId: 'SecretDelete', method: 'DELETE', path: '/secrets/{id}', body: 'none', target: 'secret' },
  { name: 'secret.update', operationId: 'SecretUpdate', method: 'POST', path: '/secrets/{id}/update', body: 'json', target: 'secret' },
  { name: 'config.list', operationId: 'ConfigList', method: 'GET', path: '/configs', body: 'none' },
  { name: 'config.create', operationId: 'ConfigCreate', method: 'POST', path: '/configs/create', body: 'json' },
  { name: 'config.inspect', operationId: 'ConfigInspect', method: 'GET', path: '/configs/{id}', body: 'none', target: 'config' },
  { name: 'config.delete', operationId: 'ConfigDelete', method: 'DELETE', path: '/configs/{id}', body: 'none', target: 'config' },
  { name: 'config.update', operationId: 'ConfigUpdate', method: 'POST', path: '/configs/{id}/update', body: 'json', target: 'config' },
  // `{name}` is a registry reference that need not exist locally: no target to look up.
  { name: 'distribution.inspect', operationId: 'DistributionInspect', method: 'GET', path: '/distribution/{name}/json', body: 'none' },
  { name: 'session', operationId: 'Session', method: 'POST', path: '/session', body: 'none', hijack: true },
  { name: 'image.attestations', operationId: 'ImageAttestations', method: 'GET', path: '/images/{name}/attestations', body: 'none', target: 'image' }, // not in v1.41
];

/**
 * Paths that dockerd routes but neither specification documents. Each is a real operation a
 * client can reach, so each gets a name a policy can allow or deny; without a row they would
 * be `unknown`, or worse, be read as a different action (the checkpoint DELETE below).
 * The operationIds follow the Docker Go client's method names.
 */
export const UNDOCUMENTED_ACTIONS: readonly ActionDef[] = [
  // Removed from the API documentation in 1.24 but still registered by dockerd until
  // moby#47155 (2024); dockerd 20.10 (minimum API 1.12) executes it for `/v1.23/...` and
  // older and streams a tar of any path of the container. Body: `{"Resource": "/path"}`.
  { name: 'container.copy', operationId: 'ContainerCopy', method: 'POST', path: '/containers/{id}/copy', body: 'json', target: 'container' },
  // Experimental checkpoint routes (moby daemon/server/router/checkpoint): always
  // registered, before the container router "or the DELETE gets masked"; dockerd answers
  // 501 unless started with --experimental.
  { name: 'checkpoint.list', operationId: 'CheckpointList', method: 'GET', path: '/containers/{id}/checkpoints', body: 'none', target: 'container' },
  { name: 'checkpoint.create', operationId: 'CheckpointCreate', method: 'POST', path: '/containers/{id}/checkpoints', body: 'json', target: 'container' },
  { name: 'checkpoint.delete', operationId: 'CheckpointDelete', method: 'DELETE', path: '/containers/{id}/checkpoints/{checkpoint}', body: 'none', target: 'container' },
  // BuildKit: cancel a build by id (moby daemon/server/router/build postCancel).
  { name: 'build.cancel', operationId: 'BuildCancel', method: 'POST', path: '/build/cancel', body: 'none' },
  // BuildKit's gRPC API over an h2c upgrade (moby daemon/server/router/grpc); buildx with
  // the docker driver builds through it. Like `session`, it becomes a raw stream.
  { name: 'grpc', operationId: 'Grpc', method: 'POST', path: '/grpc', body: 'none', hijack: true },
];
