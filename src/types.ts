/**
 * The contracts shared by the stages of the request path
 * (authenticate -> classify -> inspect -> authorize -> forward, observe at the end).
 * Modules depend on these types, not on each other's internals.
 */

/** Who is calling. `via` says which credential proved it (audit record `subject.via`). */
export interface Identity {
  readonly user: string;
  readonly groups: readonly string[];
  readonly via: 'jwt' | 'mtls' | 'anonymous';
}

/**
 * How the gateway treats a request body of an action:
 * - `none`: the operation takes no body; a request that sends one is refused (issue 3);
 * - `json`: a JSON document the policy may read; buffered up to `limits.inspectedBodyBytes`
 *   and forwarded byte for byte as it was read;
 * - `stream`: opaque bytes (tar archives, image imports, build contexts); never buffered.
 */
export type BodyKind = 'none' | 'json' | 'stream';

/** The kind of existing object an action acts on through its path parameter (issue 4). */
export type TargetKind =
  | 'container' | 'image' | 'volume' | 'network' | 'exec'
  | 'service' | 'task' | 'node' | 'secret' | 'config' | 'plugin';

/** One named Docker action: one Engine API operation (or an older path dockerd still routes). */
export interface ActionDef {
  /** `container.kill`: the operationId split at capitals, lower-cased, dot-joined. */
  readonly name: string;
  /** `ContainerKill`. */
  readonly operationId: string;
  readonly method: string;
  /** Path template as dockerd routes it, without version prefix: `/containers/{id}/kill`. */
  readonly path: string;
  readonly body: BodyKind;
  /** Set when the path names an existing object (`{id}`, `{name}`). */
  readonly target?: TargetKind;
  /** The request may be answered with `101 UPGRADED` and become a raw two-way stream. */
  readonly hijack?: boolean;
}

/** A request path read the way dockerd's router reads it. */
export interface CanonicalRequest {
  /** Decoded, version-less path that dockerd routes on: `/containers/abc/kill`. */
  readonly path: string;
  /** `1.41` when the client sent `/v1.41/...`. */
  readonly apiVersion?: string;
  /**
   * Query parameters as dockerd reads them: Go's `r.Form.Get` returns the FIRST value of a
   * repeated key, so this holds the first value.
   */
  readonly query: Readonly<Record<string, string>>;
  /** The raw query string (without `?`), forwarded unchanged. */
  readonly rawQuery: string;
  /**
   * Parameters given more than once. dockerd reads a few as lists (`names` of `/images/get`,
   * `t` of `/build`): a rule reading such a parameter cannot judge it by its first value.
   */
  readonly repeated?: ReadonlySet<string>;
}

export interface Classification {
  /** An action name from the catalogue, or `unknown`. */
  readonly action: string;
  /** Path parameters: `{ id: 'abc' }`, `{ name: 'busybox:local' }`. */
  readonly params: Readonly<Record<string, string>>;
}

/** The label names that record who owns an object (config `ownership`). */
export interface OwnershipLabels {
  readonly ownerLabel: string;
  readonly teamLabel: string;
}

/** Facts about the existing object a request acts on (issue 4). */
export interface TargetFacts {
  readonly kind: TargetKind;
  readonly id?: string;
  readonly name?: string;
  readonly image?: string;
  readonly owner?: string;
  readonly team?: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** The input document of a policy decision. `decide(policy, input)` reads nothing else. */
export interface DecisionInput {
  readonly subject: Identity;
  readonly action: string;
  readonly query: Readonly<Record<string, string>>;
  /** The decoded JSON body, when the action's body is `json` and one was sent. */
  readonly body?: unknown;
  /** Derived, normalised facts: `create.privileged`, `exec.user`, ... (issue 3). */
  readonly facts?: Readonly<Record<string, unknown>>;
  readonly target?: TargetFacts;
  /**
   * List actions (issue 4): decide whether the caller may list at all, with `target.*`
   * conditions deferred to the items - they hold in allow rules and do not match in deny rules.
   * Each item of the answer is then decided with its own `target`.
   */
  readonly deferTarget?: boolean;
  /**
   * Query parameters the request gives more than once: a condition on one of them is
   * indeterminate (an allow rule reading it does not match, a deny rule does).
   */
  readonly queryRepeated?: ReadonlySet<string>;
}

export interface Decision {
  readonly effect: 'allow' | 'deny';
  /** The rule that decided, or `default-deny`. */
  readonly rule: string;
  /**
   * Human text for the client, the audit record and `policy explain`, e.g.
   * `rule dev-runs-containers needs query.signal == "TERM", request has "KILL"`.
   */
  readonly reason: string;
}

/** Identity-independent refusal produced by a stage: written by pipeline/reject.ts. */
export interface Rejection {
  readonly status: 400 | 401 | 403 | 404 | 405 | 413 | 500 | 502 | 503;
  /** Stable code from the error catalogue (docs/errors.md). */
  readonly code: string;
  /** Text after `dockward: `. */
  readonly message: string;
  /**
   * The daemon's own words (its 404 for an unknown object), written as `{"message": ...}`
   * without the `dockward: ` prefix: the caller sees exactly what dockerd would have said.
   */
  readonly fromDaemon?: boolean;
}
