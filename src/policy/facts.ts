/**
 * Condition keys: which keys exist, for which actions, with which value type, and how a key
 * reads its value out of a DecisionInput.
 *
 * The tables below are the single place to extend when the request pipeline learns new facts
 * (issue 3: `create.*` / `exec.*` derivation; issue 4: `target.*` read from the daemon, and
 * target conditions on list actions that filter the response). Adding a key or an action to a
 * table only turns a load error into a valid policy; removing one breaks policies that load
 * today, so the tables start narrow.
 */
import { INDETERMINATE } from '../docker/facts.js';
import { goFoldEquals, goFoldKey } from '../docker/json.js';
import type { ActionDef, DecisionInput } from '../types.js';
import type { ValueSource } from './types.js';

/**
 * The static type of a key's value, used to reject matchers that can never hold
 * (`create.capAdd: NET_ADMIN` on a list, `create.privileged: "false"` on a boolean).
 * `query`: a query string, compared the way dockerd reads it (see matchers.ts).
 * `any`: a JSON body field, whose type the policy engine does not know.
 */
export type ValueType = 'bool' | 'string' | 'number' | 'strings' | 'numbers' | 'query' | 'any';

/** `create.*` facts, normalised by the facts deriver (issue 3); names as in policy-language.md. */
export const CREATE_FACTS: Readonly<Record<string, ValueType>> = {
  image: 'string',
  user: 'string',
  privileged: 'bool',
  capAdd: 'strings',
  hostPaths: 'strings',
  volumes: 'strings',
  devices: 'strings',
  hostNamespaces: 'strings',
  securityOpt: 'strings',
  unconfined: 'bool',
  sysctls: 'strings',
  cgroupParent: 'string',
  runtime: 'string',
  volumesFrom: 'strings',
  publishedPorts: 'numbers',
  memory: 'number',
  nanoCpus: 'number',
  // `create.labels.<key>` reads one label; the value is the label value (a string).
  labels: 'string',
};

const ALL_CREATE_FACTS: readonly string[] = Object.keys(CREATE_FACTS);

/** The facts a HostConfig determines: what a legacy `container.start` body can change. */
const HOST_CONFIG_FACTS = ALL_CREATE_FACTS.filter((f) => !['image', 'user', 'labels'].includes(f));
/** What a swarm task's container spec can ask for (docker/facts.ts serviceFacts). */
const SERVICE_FACTS = ['image', 'user', 'capAdd', 'hostPaths', 'volumes', 'hostNamespaces', 'unconfined', 'sysctls', 'publishedPorts', 'labels', 'memory', 'nanoCpus'];

/**
 * Which `create.*` facts exist for which action (docker/facts.ts derives them). Each action
 * only carries the fields its body really has, so a condition on a field the body cannot
 * set is a load error instead of a zero value that would read as "safe":
 * - `container.create` has them all;
 * - `container.start`: the HostConfig of a legacy start body (API < 1.24), which replaces the
 *   container's; zero values when dockerd reads no body (every request of API 1.24 and later);
 * - `container.update` takes `Resources` + `RestartPolicy`, and dockerd only applies the
 *   resource limits (memory, CPU) on update;
 * - service specs (`TaskTemplate.ContainerSpec`, `EndpointSpec`) cannot be privileged and have
 *   no devices; their only host namespace is the `host` network;
 * - `volume.create`: `hostPaths` is the `device` driver option (a bind or device mount).
 */
export const CREATE_FACTS_BY_ACTION: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ['container.create', new Set(ALL_CREATE_FACTS)],
  ['container.start', new Set(HOST_CONFIG_FACTS)],
  ['container.update', new Set(['memory', 'nanoCpus'])],
  ['service.create', new Set(SERVICE_FACTS)],
  ['service.update', new Set(SERVICE_FACTS)],
  ['volume.create', new Set(['hostPaths', 'labels'])],
]);

/** `exec.*` facts, derived from the `container.exec` body (`Privileged`, `User`, `Cmd`). */
export const EXEC_FACTS: Readonly<Record<string, ValueType>> = {
  privileged: 'bool',
  user: 'string',
  cmd: 'strings',
};
export const EXEC_FACT_ACTIONS: ReadonlySet<string> = new Set(['container.exec']);

/** `target.*` keys; they exist for actions whose path names an existing object. */
export const TARGET_FIELDS = ['owner', 'team', 'name', 'image', 'labels'] as const;

export type ParsedKey =
  | { readonly ok: true; readonly source: ValueSource; readonly type: ValueType }
  | { readonly ok: false; readonly message: string };

/** Parse a `when:` key. Does not look at actions; see `keyExistsFor`. */
export function parseConditionKey(key: string): ParsedKey {
  const dot = key.indexOf('.');
  const family = dot < 0 ? key : key.slice(0, dot);
  const rest = dot < 0 ? '' : key.slice(dot + 1);
  switch (family) {
    case 'query':
      if (rest === '') return bad(`condition key "${key}" needs a parameter name: query.<name>`);
      return { ok: true, source: { kind: 'query', name: rest }, type: 'query' };
    case 'body': {
      const path = rest.split('.');
      if (rest === '' || path.some((s) => s === '')) {
        return bad(`condition key "${key}" needs a field path: body.<Field>.<Field>`);
      }
      return { ok: true, source: { kind: 'body', path, folded: path.map(goFoldKey) }, type: 'any' };
    }
    case 'target': {
      if (rest.startsWith('labels.') && rest.length > 'labels.'.length) {
        // The label key is everything after `labels.`: label keys contain dots (com.example.env).
        return { ok: true, source: { kind: 'target', field: 'labels', label: rest.slice('labels.'.length) }, type: 'string' };
      }
      const field = TARGET_FIELDS.find((f) => f === rest && f !== 'labels');
      if (field === undefined) {
        return bad(`unknown condition key "${key}"${suggest(rest, ['owner', 'team', 'name', 'image', 'labels.<key>'], 'target.')}; target keys: target.owner, target.team, target.name, target.image, target.labels.<key>`);
      }
      return { ok: true, source: { kind: 'target', field }, type: 'string' };
    }
    case 'create': {
      if (rest.startsWith('labels.') && rest.length > 'labels.'.length) {
        return { ok: true, source: { kind: 'fact', fact: 'create.labels', label: rest.slice('labels.'.length) }, type: 'string' };
      }
      const type = rest === 'labels' ? undefined : ownValue(CREATE_FACTS, rest);
      if (type === undefined) {
        const names = ALL_CREATE_FACTS.map((n) => (n === 'labels' ? 'labels.<key>' : n));
        return bad(`unknown condition key "${key}"${suggest(rest, names, 'create.')}; create facts: ${names.map((n) => `create.${n}`).join(', ')}`);
      }
      return { ok: true, source: { kind: 'fact', fact: key }, type };
    }
    case 'exec': {
      const type = ownValue(EXEC_FACTS, rest);
      if (type === undefined) {
        const names = Object.keys(EXEC_FACTS);
        return bad(`unknown condition key "${key}"${suggest(rest, names, 'exec.')}; exec facts: ${names.map((n) => `exec.${n}`).join(', ')}`);
      }
      return { ok: true, source: { kind: 'fact', fact: key }, type };
    }
    default:
      return bad(`unknown condition key "${key}"; keys start with query., body., target., create. or exec.`);
  }
}

/**
 * List actions on which target conditions filter the answer item by item (issue 4): the
 * request itself is decided with its target conditions deferred (DecisionInput.deferTarget).
 */
export const LIST_TARGET_ACTIONS: ReadonlySet<string> = new Set(['container.list', 'image.list', 'volume.list', 'network.list', 'system.events']);

/**
 * Does the key exist for this action? `def` is undefined for the `unknown` pseudo-action,
 * which only has a query (its body and target are not known).
 */
export function keyExistsFor(source: ValueSource, actionName: string, def: ActionDef | undefined): boolean {
  switch (source.kind) {
    case 'query':
      return true;
    case 'body':
      return def !== undefined && def.body === 'json';
    case 'target':
      return (def !== undefined && def.target !== undefined) || LIST_TARGET_ACTIONS.has(actionName);
    case 'fact': {
      const [family, name] = splitFact(source.fact);
      if (family === 'exec') return EXEC_FACT_ACTIONS.has(actionName);
      return CREATE_FACTS_BY_ACTION.get(actionName)?.has(name) === true;
    }
  }
}

/** One sentence saying where a key does exist, for the load error. */
export function whereKeyExists(source: ValueSource): string {
  switch (source.kind) {
    case 'query':
      return 'query keys exist for every action';
    case 'body':
      return 'body keys exist only for actions with a JSON body';
    case 'target':
      return `target keys exist only for actions on an existing object (a path with {id} or {name}) and for ${[...LIST_TARGET_ACTIONS].join(', ')}, where they filter the answer`;
    case 'fact': {
      const [family, name] = splitFact(source.fact);
      if (family === 'exec') return `exec facts exist only for ${[...EXEC_FACT_ACTIONS].join(', ')}`;
      const actions = [...CREATE_FACTS_BY_ACTION].filter(([, keys]) => keys.has(name)).map(([a]) => a);
      return `create.${name === 'labels' ? 'labels.<key>' : name} exists only for ${actions.join(', ')}`;
    }
  }
}

function splitFact(fact: string): [string, string] {
  const dot = fact.indexOf('.');
  return [fact.slice(0, dot), fact.slice(dot + 1)];
}

/** The value is not provided by the input (a fact the pipeline did not derive, no target). */
export const UNAVAILABLE: unique symbol = Symbol('unavailable');
/** The value cannot be read without guessing (two spellings of one body key, a path through a non-object). */
export const UNREADABLE: unique symbol = Symbol('unreadable');
export type Missing = typeof UNAVAILABLE | typeof UNREADABLE;

const hasOwn = Object.prototype.hasOwnProperty;

/**
 * Read a condition's value. `undefined` means "absent": the matcher applies the daemon's zero
 * value. `UNAVAILABLE` / `UNREADABLE` mean the condition is indeterminate.
 *
 * The contract with the facts deriver (issue 3) and the target reader (issue 4):
 * - `input.facts` is keyed by the full fact name (`create.privileged`, `exec.cmd`), values
 *   already normalised (booleans, numbers, string lists); `create.labels` is the label map
 *   that `create.labels.<key>` reads. A fact the deriver did not set is UNAVAILABLE: an allow
 *   rule that reads it never matches, a deny rule that reads it always does.
 * - `input.target` absent means "not read": every `target.*` key is UNAVAILABLE. Present, a
 *   missing owner/team/name/image or label is the zero value "".
 * - `input.body` is the decoded JSON body; absent means "no body", every field its zero value.
 *
 * Every lookup goes through own properties: a query parameter named `constructor` must not
 * read `Object.prototype.constructor`.
 */
export function readSource(source: ValueSource, input: DecisionInput): unknown {
  switch (source.kind) {
    case 'query': {
      // Given twice, a parameter dockerd reads as a list is not its first value: indeterminate.
      if (input.queryRepeated !== undefined && input.queryRepeated.has(source.name)) return UNREADABLE;
      // Go's r.Form.Get returns "" for an absent parameter; dockerd cannot tell the two apart.
      const q = input.query;
      const v = hasOwn.call(q, source.name) ? q[source.name] : undefined;
      return typeof v === 'string' ? v : '';
    }
    case 'body':
      return readBodyPath(input.body, source.folded);
    case 'target': {
      const t = input.target;
      if (t === undefined || t === null) return UNAVAILABLE;
      if (source.field === 'labels') {
        const labels = t.labels;
        if (labels === undefined || labels === null || typeof labels !== 'object') return UNAVAILABLE;
        return hasOwn.call(labels, source.label!) ? labels[source.label!] : undefined;
      }
      return t[source.field];
    }
    case 'fact': {
      const facts = input.facts;
      if (facts === undefined || facts === null || !hasOwn.call(facts, source.fact)) return UNAVAILABLE;
      const v = facts[source.fact];
      if (v === undefined) return UNAVAILABLE;
      // The deriver could not tell without the daemon's state (an image that may be an ID).
      if (v === INDETERMINATE) return UNREADABLE;
      if (source.label === undefined) return v;
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return UNAVAILABLE;
      return hasOwn.call(v, source.label) ? (v as Record<string, unknown>)[source.label] : undefined;
    }
  }
}

const NUMERIC_SEGMENT = /^(0|[1-9][0-9]*)$/;

/**
 * Read `body.A.B` the way dockerd's Go decoder fills struct fields: object keys match
 * case-insensitively. Two keys of one object that fold to the same name are ambiguous
 * (Go would merge them, last one winning); the pipeline rejects such bodies, and if one gets
 * here anyway the value is UNREADABLE rather than a guess. A path through an array needs a
 * numeric segment (`body.Cmd.0`).
 */
export function readBodyPath(body: unknown, folded: readonly string[]): unknown {
  let cur: unknown = body;
  for (const seg of folded) {
    if (cur === undefined || cur === null) return undefined;
    if (typeof cur !== 'object') return UNREADABLE;
    if (Array.isArray(cur)) {
      if (!NUMERIC_SEGMENT.test(seg)) return UNREADABLE;
      cur = cur[Number(seg)];
      continue;
    }
    let found: unknown = undefined;
    let count = 0;
    const obj = cur as Record<string, unknown>;
    for (const k in obj) {
      if (hasOwn.call(obj, k) && goFoldEquals(k, seg)) {
        found = obj[k];
        count++;
      }
    }
    if (count > 1) return UNREADABLE;
    cur = found;
  }
  return cur === null ? undefined : cur;
}

function ownValue<T>(table: Readonly<Record<string, T>>, key: string): T | undefined {
  return hasOwn.call(table, key) ? table[key] : undefined;
}

function bad(message: string): ParsedKey {
  return { ok: false, message };
}

/** ` (did you mean "create.privileged"?)` when a candidate is one or two edits away. */
export function suggest(word: string, candidates: readonly string[], prefix = ''): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best === undefined ? '' : ` (did you mean "${prefix}${best}"?)`;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
