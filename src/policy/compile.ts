/**
 * Policy text -> CompiledPolicy. Pure: the caller (load.ts) reads the files.
 *
 * Every error is collected with its file:line:column, and compilation continues past an error
 * so that `dockward policy check` reports all of them at once. A policy with any error is not
 * returned at all: `serve` refuses to start and a reload keeps the old policy (fail closed).
 *
 * Everything a decision needs is prepared here, once: action globs are expanded against the
 * catalogue into a per-action rule index, subjects become sets, value globs become matcher
 * functions. Nothing is compiled per request.
 */
import picomatch from 'picomatch';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { Document, Node as YamlNode, Pair, YAMLMap } from 'yaml';
import { UNKNOWN_ACTION } from '../docker/catalogue.js';
import type { ActionDef } from '../types.js';
import { keyExistsFor, parseConditionKey, suggest, whereKeyExists } from './facts.js';
import type { ValueType } from './facts.js';
import { cleanAbsolutePath, compileConditionTest, describeMatcher, holdsOnlyFor, mentionsSubject } from './matchers.js';
import type {
  ActionRules,
  CompiledCondition,
  CompiledPolicy,
  CompiledRule,
  CompiledSubjects,
  FactNeeds,
  Literal,
  Matcher,
  PolicyError,
  RuleBucket,
  SetItem,
  SubjectIndex,
  ValueIndex,
} from './types.js';

export interface PolicySource {
  /** The name errors and explanations show: the path as the operator wrote it. */
  readonly file: string;
  readonly text: string;
}

export interface CompileOptions {
  /** The action catalogue; injected so that tests can use a small fixed one. */
  readonly actions: readonly ActionDef[];
}

export interface CompileResult {
  /** Present only when there are no errors. */
  readonly policy?: CompiledPolicy;
  readonly errors: PolicyError[];
}

/** The rule name decisions use when no rule matched; a policy rule may not take it. */
export const DEFAULT_DENY_RULE = 'default-deny';

const TOP_LEVEL_KEYS = ['version', 'rules'] as const;
const RULE_KEYS = ['name', 'effect', 'subjects', 'actions', 'when', 'description'] as const;
const MATCHERS = ['in', 'subsetOf', 'each', 'any', 'under', 'glob', 'exists', 'lte', 'gte', 'not'] as const;
type MatcherName = (typeof MATCHERS)[number];

/** Rule names become metric label values and appear in client messages: keep them plain. */
const RULE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
/**
 * Value and action globs: `*` and `?` stay within one `/` segment (`registry.example.com/dev/*`
 * is the images directly under dev/), `**` crosses segments, `{a,b}` and `[abc]` work.
 * dot: values are not file names, a leading "." is an ordinary character. nonegate: a value
 * starting with "!" is a value, not an inverted pattern. windows: never treat "\" as "/".
 */
export const GLOB_OPTIONS: picomatch.PicomatchOptions = Object.freeze({ dot: true, nonegate: true, windows: false });

export function compilePolicy(sources: readonly PolicySource[], opts: CompileOptions): CompileResult {
  const catalogue = new Map<string, ActionDef>();
  for (const a of opts.actions) catalogue.set(a.name, a);
  const state: CompileState = {
    catalogue,
    catalogueNames: [...catalogue.keys()],
    errors: [],
    rules: [],
    names: new Map(),
  };
  for (const source of sources) compileFile(state, source);
  if (state.errors.length > 0) return { errors: state.errors };
  return { policy: buildPolicy(state.rules, sources.map((s) => s.file)), errors: [] };
}

interface CompileState {
  readonly catalogue: ReadonlyMap<string, ActionDef>;
  readonly catalogueNames: readonly string[];
  readonly errors: PolicyError[];
  readonly rules: CompiledRule[];
  /** Rule name -> where it was first defined, for duplicate errors across files. */
  readonly names: Map<string, string>;
}

/** One file being compiled: knows how to turn a YAML node into a position. */
class FileContext {
  constructor(
    readonly state: CompileState,
    readonly file: string,
    readonly lines: LineCounter,
    readonly doc: Document,
  ) {}

  where(node: YamlNode | Pair | null | undefined): { line: number; column: number } {
    const offset = rangeStart(node);
    if (offset === undefined) return { line: 1, column: 1 };
    const pos = this.lines.linePos(offset);
    return { line: pos.line, column: pos.col };
  }

  error(node: YamlNode | Pair | null | undefined, message: string): void {
    this.state.errors.push({ file: this.file, ...this.where(node), message });
  }

  /** Follow `*alias` to the anchored node. */
  resolve(node: unknown): YamlNode | null {
    if (isAlias(node)) return (node.resolve(this.doc) as YamlNode | undefined) ?? null;
    return (node as YamlNode | null) ?? null;
  }
}

function rangeStart(node: YamlNode | Pair | null | undefined): number | undefined {
  if (node === null || node === undefined) return undefined;
  if ('range' in node && Array.isArray(node.range)) return node.range[0];
  if ('key' in node) return rangeStart(node.key as YamlNode | null);
  return undefined;
}

function compileFile(state: CompileState, source: PolicySource): void {
  const lines = new LineCounter();
  const doc = parseDocument(source.text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true, version: '1.2' });
  const ctx = new FileContext(state, source.file, lines, doc);
  // Warnings (unresolved tags, ...) are errors too: a policy that means something else than it
  // reads must not load.
  const problems = [...doc.errors, ...doc.warnings];
  for (const e of problems) {
    const pos = e.linePos?.[0];
    state.errors.push({
      file: source.file,
      line: pos?.line ?? 1,
      column: pos?.col ?? 1,
      // prettyErrors appends the position and a source excerpt; the position is ours to print.
      message: `YAML: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`,
    });
  }
  if (problems.length > 0) return;

  const root = ctx.resolve(doc.contents);
  if (root === null || (isScalar(root) && root.value === null)) {
    // An emptied file would silently drop its rules, deny rules included.
    ctx.error(root, 'the file is empty: expected a map with a "rules" list');
    return;
  }
  if (!isMap(root)) {
    ctx.error(root, 'expected a map with a "rules" list at the top level');
    return;
  }
  let rulesNode: YamlNode | null | undefined;
  for (const pair of root.items) {
    const key = scalarKey(ctx, pair);
    if (key === undefined) continue;
    if (key === 'rules') rulesNode = ctx.resolve(pair.value);
    else if (key === 'version') {
      const v = ctx.resolve(pair.value);
      if (!isScalar(v) || v.value !== 1) ctx.error(at(v, pair), 'version must be 1 (this is policy language v1)');
    } else {
      ctx.error(pair, `unknown top-level key "${key}"${suggest(key, TOP_LEVEL_KEYS)}; allowed: ${TOP_LEVEL_KEYS.join(', ')}`);
    }
  }
  if (rulesNode === undefined) {
    ctx.error(root, 'missing "rules": expected a list of rules');
    return;
  }
  if (!isSeq(rulesNode)) {
    ctx.error(rulesNode ?? root, '"rules" must be a list of rules');
    return;
  }
  for (const item of rulesNode.items) compileRule(ctx, ctx.resolve(item));
}

/** The key of a map entry as a string, or an error. */
function scalarKey(ctx: FileContext, pair: Pair): string | undefined {
  const key = ctx.resolve(pair.key);
  if (!isScalar(key) || typeof key.value !== 'string') {
    ctx.error(key ?? pair, 'map keys must be plain strings');
    return undefined;
  }
  return key.value;
}

function compileRule(ctx: FileContext, node: YamlNode | null): void {
  if (!isMap(node)) {
    ctx.error(node, 'a rule must be a map with name, effect, subjects and actions');
    return;
  }
  const errorsBefore = ctx.state.errors.length;
  const fields = new Map<string, { pair: Pair; value: YamlNode | null }>();
  for (const pair of node.items) {
    const key = scalarKey(ctx, pair);
    if (key === undefined) continue;
    if (!(RULE_KEYS as readonly string[]).includes(key)) {
      ctx.error(pair, `unknown rule key "${key}"${suggest(key, RULE_KEYS)}; allowed: ${RULE_KEYS.join(', ')}`);
      continue;
    }
    fields.set(key, { pair, value: ctx.resolve(pair.value) });
  }

  const name = compileName(ctx, node, fields.get('name'));
  const effect = compileEffect(ctx, node, fields.get('effect'));
  const subjects = compileSubjects(ctx, node, fields.get('subjects'));
  const actions = compileActions(ctx, node, fields.get('actions'));
  const conditions = compileWhen(ctx, fields.get('when'), actions);
  let description: string | undefined;
  const desc = fields.get('description');
  if (desc !== undefined) {
    if (isScalar(desc.value) && typeof desc.value.value === 'string') description = desc.value.value;
    else ctx.error(at(desc.value, desc.pair), 'description must be a string');
  }

  if (ctx.state.errors.length > errorsBefore) return;
  if (name === undefined || effect === undefined || subjects === undefined || actions === undefined || conditions === undefined) return;
  const rule: CompiledRule = {
    name,
    effect,
    index: ctx.state.rules.length,
    file: ctx.file,
    line: ctx.where(node).line,
    subjects,
    actionPatterns: actions.patterns,
    actions: actions.names,
    conditions,
    ...(description !== undefined ? { description } : {}),
    allowDecision: Object.freeze({ effect: 'allow', rule: name, reason: `allowed by rule ${name}` }),
  };
  ctx.state.rules.push(Object.freeze(rule));
}

type Field = { pair: Pair; value: YamlNode | null } | undefined;

function compileName(ctx: FileContext, rule: YAMLMap, field: Field): string | undefined {
  if (field === undefined) {
    ctx.error(rule, 'rule has no name: every rule needs a unique "name"');
    return undefined;
  }
  const v = field.value;
  if (!isScalar(v) || typeof v.value !== 'string' || v.value === '') {
    ctx.error(at(v, field.pair), 'rule name must be a non-empty string');
    return undefined;
  }
  const name = v.value;
  if (!RULE_NAME.test(name)) {
    ctx.error(v, `rule name "${name}" may only use letters, digits, ".", "_" and "-" (at most 100 characters): it appears in metrics and client messages`);
    return undefined;
  }
  if (name === DEFAULT_DENY_RULE) {
    ctx.error(v, `rule name "${DEFAULT_DENY_RULE}" is reserved for decisions no rule made`);
    return undefined;
  }
  const here = `${ctx.file}:${ctx.where(v).line}`;
  const first = ctx.state.names.get(name);
  if (first !== undefined) {
    ctx.error(v, `duplicate rule name "${name}" (first defined at ${first})`);
    return undefined;
  }
  ctx.state.names.set(name, here);
  return name;
}

function compileEffect(ctx: FileContext, rule: YAMLMap, field: Field): 'allow' | 'deny' | undefined {
  if (field === undefined) {
    ctx.error(rule, 'rule has no effect: write "effect: allow" or "effect: deny"');
    return undefined;
  }
  const v = field.value;
  if (isScalar(v) && (v.value === 'allow' || v.value === 'deny')) return v.value;
  ctx.error(at(v, field.pair), `effect must be allow or deny, not ${describeNode(v)}`);
  return undefined;
}

function compileSubjects(ctx: FileContext, rule: YAMLMap, field: Field): CompiledSubjects | undefined {
  if (field === undefined) {
    ctx.error(rule, 'rule has no subjects: write e.g. subjects: ["group:dev"] ("*" is any authenticated caller)');
    return undefined;
  }
  const list = stringList(ctx, field, 'subjects');
  if (list === undefined) return undefined;
  let anyAuthenticated = false;
  let anonymous = false;
  const users = new Set<string>();
  const groups = new Set<string>();
  let ok = true;
  for (const { text, node } of list) {
    if (text === '*') anyAuthenticated = true;
    else if (text === 'anonymous') anonymous = true;
    else {
      const m = /^(user|group):(.*)$/s.exec(text);
      const problem = m === null ? 'expected "*", "anonymous", "user:<name>" or "group:<name>"' : subjectNameProblem(m[2]!);
      if (problem !== undefined) {
        ctx.error(node, `bad subject "${text}": ${problem}`);
        ok = false;
        continue;
      }
      (m![1] === 'user' ? users : groups).add(m![2]!);
    }
  }
  if (!ok) return undefined;
  return { anyAuthenticated, anonymous, users, groups, text: list.map((s) => s.text) };
}

function subjectNameProblem(name: string): string | undefined {
  if (name === '') return 'the name is empty';
  if (name.trim() !== name) return 'the name has leading or trailing spaces';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'the name has control characters';
  // Subjects are exact names; a "*" here would read as a wildcard and match nobody.
  if (name.includes('*')) return 'subject names are exact (no globs); "*" alone means any authenticated caller';
  return undefined;
}

interface CompiledActions {
  readonly patterns: readonly string[];
  readonly names: ReadonlySet<string>;
  /** For load errors: which pattern produced an action. */
  readonly origin: ReadonlyMap<string, string>;
}

function compileActions(ctx: FileContext, rule: YAMLMap, field: Field): CompiledActions | undefined {
  if (field === undefined) {
    ctx.error(rule, 'rule has no actions: write e.g. actions: [container.list] (globs allowed: container.*)');
    return undefined;
  }
  const list = stringList(ctx, field, 'actions');
  if (list === undefined) return undefined;
  const names = new Set<string>();
  const origin = new Map<string, string>();
  let ok = true;
  for (const { text, node } of list) {
    // `unknown` is matched only when named: no glob (not even "*") opens requests the
    // catalogue does not know.
    if (text === UNKNOWN_ACTION) {
      names.add(text);
      origin.set(text, text);
      continue;
    }
    if (picomatch.scan(text).isGlob) {
      let test: (s: string) => boolean;
      try {
        test = picomatch(text, GLOB_OPTIONS);
      } catch (e) {
        ctx.error(node, `bad action glob "${text}": ${(e as Error).message}`);
        ok = false;
        continue;
      }
      const matched = ctx.state.catalogueNames.filter((n) => test(n));
      if (matched.length === 0) {
        ctx.error(node, `action glob "${text}" matches no known action`);
        ok = false;
        continue;
      }
      for (const n of matched) {
        names.add(n);
        if (!origin.has(n)) origin.set(n, text);
      }
      continue;
    }
    if (!ctx.state.catalogue.has(text)) {
      ctx.error(node, `unknown action "${text}"${suggest(text, ctx.state.catalogueNames)}`);
      ok = false;
      continue;
    }
    names.add(text);
    origin.set(text, text);
  }
  if (!ok) return undefined;
  return { patterns: list.map((s) => s.text), names, origin };
}

/** A non-empty YAML list of non-empty strings. */
function stringList(ctx: FileContext, field: NonNullable<Field>, what: string): { text: string; node: YamlNode }[] | undefined {
  const seq = field.value;
  if (!isSeq(seq)) {
    ctx.error(at(seq, field.pair), `${what} must be a list, e.g. ${what}: [${what === 'subjects' ? '"group:dev"' : 'container.list'}]`);
    return undefined;
  }
  if (seq.items.length === 0) {
    ctx.error(seq, `${what} is empty: the rule would never match`);
    return undefined;
  }
  const out: { text: string; node: YamlNode }[] = [];
  let ok = true;
  for (const raw of seq.items) {
    const item = ctx.resolve(raw);
    if (!isScalar(item) || typeof item.value !== 'string' || item.value === '') {
      ctx.error(item ?? seq, `${what} items must be non-empty strings, not ${describeNode(item)}`);
      ok = false;
      continue;
    }
    out.push({ text: item.value, node: item });
  }
  return ok ? out : undefined;
}

function compileWhen(ctx: FileContext, field: Field, actions: CompiledActions | undefined): CompiledCondition[] | undefined {
  if (field === undefined) return [];
  const map = field.value;
  if (!isMap(map)) {
    // `when:` with every condition commented out parses as null; loading that as "no
    // conditions" would turn a narrow allow into a broad one.
    ctx.error(at(map, field.pair), map === null || (isScalar(map) && map.value === null)
      ? '"when" is empty: remove it or give it conditions'
      : '"when" must be a map of condition key -> matcher');
    return undefined;
  }
  const out: CompiledCondition[] = [];
  let ok = true;
  for (const pair of map.items) {
    const key = scalarKey(ctx, pair);
    if (key === undefined) {
      ok = false;
      continue;
    }
    const keyNode = ctx.resolve(pair.key);
    const parsed = parseConditionKey(key);
    if (!parsed.ok) {
      ctx.error(keyNode, parsed.message);
      ok = false;
      continue;
    }
    if (actions !== undefined) {
      const missing = [...actions.names].filter((a) => !keyExistsFor(parsed.source, a, ctx.state.catalogue.get(a)));
      if (missing.length > 0) {
        const first = missing[0]!;
        const via = actions.origin.get(first);
        const more = missing.length > 1 ? ` and ${missing.length - 1} more of this rule's actions` : '';
        ctx.error(keyNode, `condition key "${key}" does not exist for action ${first}${via !== first ? ` (from "${via}")` : ''}${more}: ${whereKeyExists(parsed.source)}`);
        ok = false;
      }
    }
    const matcher = compileMatcher(ctx, ctx.resolve(pair.value), pair, key, parsed.type);
    if (matcher === undefined) {
      ok = false;
      continue;
    }
    const pos = ctx.where(keyNode);
    out.push(Object.freeze({
      key,
      source: parsed.source,
      matcher,
      line: pos.line,
      column: pos.column,
      test: compileConditionTest(parsed.source, matcher),
      expected: mentionsSubject(matcher) ? undefined : `${key} ${describeMatcher(matcher, undefined)}`,
      holdsOnlyFor: holdsOnlyFor(matcher),
    }));
  }
  return ok ? out : undefined;
}

const TYPE_NAMES: Record<ValueType, string> = {
  bool: 'a boolean',
  string: 'a string',
  number: 'a number',
  strings: 'a list of strings',
  numbers: 'a list of numbers',
  query: 'a query string',
  any: 'a JSON value',
};

function isListType(t: ValueType): boolean {
  return t === 'strings' || t === 'numbers';
}

function elementType(t: ValueType): ValueType {
  return t === 'strings' ? 'string' : t === 'numbers' ? 'number' : 'any';
}

function compileMatcher(ctx: FileContext, node: YamlNode | null, pair: Pair, key: string, type: ValueType): Matcher | undefined {
  if (isMap(node)) {
    if (node.items.length === 0) {
      ctx.error(node, `empty matcher for ${key}: write a value or { ${MATCHERS.join(' | ')}: ... }`);
      return undefined;
    }
    const parts: Matcher[] = [];
    let ok = true;
    for (const pair of node.items) {
      const name = scalarKey(ctx, pair);
      if (name === undefined) {
        ok = false;
        continue;
      }
      if (!(MATCHERS as readonly string[]).includes(name)) {
        ctx.error(ctx.resolve(pair.key), `unknown matcher "${name}"${suggest(name, MATCHERS)}; matchers: ${MATCHERS.join(', ')}`);
        ok = false;
        continue;
      }
      const m = compileNamedMatcher(ctx, name as MatcherName, ctx.resolve(pair.value), pair, key, type);
      if (m === undefined) ok = false;
      else parts.push(m);
    }
    if (!ok) return undefined;
    return parts.length === 1 ? parts[0] : { kind: 'all', parts };
  }
  if (isSeq(node)) {
    ctx.error(node, `a list is not a matcher for ${key}: write { in: [...] }, { subsetOf: [...] } or { each: ... }`);
    return undefined;
  }
  // A scalar: equality.
  const lit = literalOf(ctx, node, pair, key);
  if (lit === undefined) return undefined;
  if (lit.kind === 'scalar' && typeof lit.value === 'string' && picomatch.scan(lit.value).isGlob) {
    // A deny rule `target.image: "evil/*"` that silently compared literally would never deny.
    ctx.error(node, `${JSON.stringify(lit.value)} looks like a glob, but a plain value matches exactly: write { glob: ${JSON.stringify(lit.value)} } or { in: [${JSON.stringify(lit.value)}] }`);
    return undefined;
  }
  if (!literalFits(ctx, node, key, type, lit)) return undefined;
  return { kind: 'eq', value: lit };
}

function compileNamedMatcher(ctx: FileContext, name: MatcherName, node: YamlNode | null, pair: Pair, key: string, type: ValueType): Matcher | undefined {
  const wrongType = (allowed: string): undefined => {
    ctx.error(ctx.resolve(pair.key), `matcher "${name}" does not apply to ${key}, which is ${TYPE_NAMES[type]} (${name} needs ${allowed})`);
    return undefined;
  };
  switch (name) {
    case 'in': {
      if (isListType(type)) return wrongType('a single value; use subsetOf, each or any on a list');
      const items = setItems(ctx, node, pair, key, type, 'in');
      return items === undefined ? undefined : { kind: 'in', items };
    }
    case 'subsetOf': {
      if (!isListType(type) && type !== 'any') return wrongType('a list');
      const items = setItems(ctx, node, pair, key, elementType(type), 'subsetOf');
      return items === undefined ? undefined : { kind: 'subsetOf', items };
    }
    case 'each':
    case 'any': {
      if (!isListType(type) && type !== 'any') return wrongType('a list');
      const inner = compileMatcher(ctx, node, pair, `${key} items`, elementType(type));
      return inner === undefined ? undefined : { kind: name, inner };
    }
    case 'under': {
      if (type !== 'string' && type !== 'query' && type !== 'any') return wrongType('a path string');
      if (!isSeq(node) || node.items.length === 0) {
        ctx.error(at(node, pair), `under needs a non-empty list of absolute paths, e.g. { under: [/srv/data] }`);
        return undefined;
      }
      const prefixes: string[][] = [];
      const text: string[] = [];
      let ok = true;
      for (const raw of node.items) {
        const item = ctx.resolve(raw);
        const segments = isScalar(item) && typeof item.value === 'string' ? cleanAbsolutePath(item.value) : null;
        if (segments === null) {
          ctx.error(item ?? node, `under needs absolute paths, not ${describeNode(item)}`);
          ok = false;
          continue;
        }
        prefixes.push(segments);
        text.push(`/${segments.join('/')}`);
      }
      return ok ? { kind: 'under', prefixes, text } : undefined;
    }
    case 'glob': {
      if (type !== 'string' && type !== 'query' && type !== 'any') return wrongType('a string');
      if (!isScalar(node) || typeof node.value !== 'string' || node.value === '') {
        ctx.error(at(node, pair), `glob needs a non-empty pattern string, not ${describeNode(node)}`);
        return undefined;
      }
      if (node.value.includes('${')) {
        ctx.error(node, 'glob patterns cannot use ${subject.*} substitutions');
        return undefined;
      }
      const test = compileGlob(ctx, node, node.value);
      return test === undefined ? undefined : { kind: 'glob', pattern: node.value, test };
    }
    case 'exists': {
      if (!isScalar(node) || typeof node.value !== 'boolean') {
        ctx.error(at(node, pair), `exists needs true or false, not ${describeNode(node)}`);
        return undefined;
      }
      return { kind: 'exists', want: node.value };
    }
    case 'lte':
    case 'gte': {
      if (type !== 'number' && type !== 'numbers' && type !== 'query' && type !== 'any') return wrongType('a number');
      if (type === 'numbers') return wrongType('a number; on a list write { each: { ' + name + ': n } }');
      if (!isScalar(node) || typeof node.value !== 'number' || !Number.isFinite(node.value)) {
        ctx.error(at(node, pair), `${name} needs a number, not ${describeNode(node)}`);
        return undefined;
      }
      return { kind: name, bound: node.value };
    }
    case 'not': {
      const inner = compileMatcher(ctx, node, pair, key, type);
      return inner === undefined ? undefined : { kind: 'not', inner };
    }
  }
}

function setItems(ctx: FileContext, node: YamlNode | null, pair: Pair, key: string, type: ValueType, name: string): SetItem[] | undefined {
  if (!isSeq(node) || node.items.length === 0) {
    ctx.error(at(node, pair), `${name} needs a non-empty list, e.g. { ${name}: [a, b] }`);
    return undefined;
  }
  const items: SetItem[] = [];
  let ok = true;
  for (const raw of node.items) {
    const item = ctx.resolve(raw);
    const lit = literalOf(ctx, item, pair, key);
    if (lit === undefined) {
      ok = false;
      continue;
    }
    if (lit.kind === 'scalar' && typeof lit.value === 'string' && picomatch.scan(lit.value).isGlob) {
      if (type !== 'string' && type !== 'query' && type !== 'any') {
        ctx.error(item, `glob ${JSON.stringify(lit.value)} cannot match ${key}, which is ${TYPE_NAMES[type]}`);
        ok = false;
        continue;
      }
      const test = compileGlob(ctx, item, lit.value);
      if (test === undefined) ok = false;
      else items.push({ kind: 'glob', pattern: lit.value, test });
      continue;
    }
    if (!literalFits(ctx, item, key, type, lit)) {
      ok = false;
      continue;
    }
    items.push(lit);
  }
  return ok ? items : undefined;
}

function compileGlob(ctx: FileContext, node: YamlNode | null, pattern: string): ((s: string) => boolean) | undefined {
  try {
    // picomatch() validates the pattern and reports its errors; the test itself is globTest's.
    picomatch(pattern, GLOB_OPTIONS);
    return globTest(pattern);
  } catch (e) {
    ctx.error(node, `bad glob ${JSON.stringify(pattern)}: ${(e as Error).message}`);
    return undefined;
  }
}

/**
 * What `picomatch(pattern, GLOB_OPTIONS)` returns, without the two result objects its matcher
 * allocates per call (value globs run on the request path, once per rule tried). For these
 * options picomatch 4's matcher is exactly: not "", and equal to the pattern or matched by
 * makeRe's regular expression (picomatch.test: no format, matchBase, capture, ignore or
 * callbacks). A test compares the two on many patterns and inputs.
 */
export function globTest(pattern: string): (s: string) => boolean {
  const re = picomatch.makeRe(pattern, GLOB_OPTIONS);
  return (s) => s !== '' && (s === pattern || re.test(s));
}

const SUBSTITUTIONS: Record<string, Literal> = {
  '${subject.name}': { kind: 'subject.name' },
  '${subject.groups}': { kind: 'subject.groups' },
};

function literalOf(ctx: FileContext, node: YamlNode | null, pair: Pair, key: string): Literal | undefined {
  if (!isScalar(node) || node.value === null || node.value === undefined) {
    ctx.error(at(node, pair), `missing value for ${key}`);
    return undefined;
  }
  const v: unknown = node.value;
  if (typeof v === 'string') {
    const sub = Object.prototype.hasOwnProperty.call(SUBSTITUTIONS, v) ? SUBSTITUTIONS[v] : undefined;
    if (sub !== undefined) return sub;
    if (v.includes('${')) {
      ctx.error(node, `bad substitution in ${JSON.stringify(v)}: a value can be exactly "\${subject.name}" or "\${subject.groups}"`);
      return undefined;
    }
    return { kind: 'scalar', value: v };
  }
  if (typeof v === 'boolean') return { kind: 'scalar', value: v };
  if (typeof v === 'number' && Number.isFinite(v)) return { kind: 'scalar', value: v };
  ctx.error(node, `unsupported value ${describeNode(node)} for ${key}: use a string, number or boolean`);
  return undefined;
}

/** Reject literals that can never equal a typed fact (`create.privileged: "false"`). */
function literalFits(ctx: FileContext, node: YamlNode | null, key: string, type: ValueType, lit: Literal): boolean {
  if (type === 'any' || type === 'query') return true;
  if (isListType(type)) {
    ctx.error(node, `${key} is ${TYPE_NAMES[type]}: compare it with subsetOf, each, any or exists`);
    return false;
  }
  const litType = lit.kind === 'scalar' ? typeof lit.value : 'string';
  const want = type === 'bool' ? 'boolean' : type;
  if (litType !== want) {
    const shown = lit.kind === 'scalar' ? JSON.stringify(lit.value) : lit.kind === 'subject.name' ? '${subject.name}' : '${subject.groups}';
    ctx.error(node, `${key} is ${TYPE_NAMES[type]}, so ${shown} can never match it`);
    return false;
  }
  return true;
}

/** Where to point for a value: the value itself, or its key when the value was left empty. */
function at(node: YamlNode | null | undefined, pair: Pair): YamlNode | Pair {
  if (node === null || node === undefined || (isScalar(node) && node.value === null)) return pair;
  return node;
}

function describeNode(node: YamlNode | null | undefined): string {
  if (node === null || node === undefined) return 'nothing';
  if (isScalar(node)) return node.value === null ? 'an empty value' : JSON.stringify(node.value);
  if (isSeq(node)) return 'a list';
  if (isMap(node)) return 'a map';
  return 'this value';
}

// ---------------------------------------------------------------------------------------------
// The per-action index: action -> effect -> subject bucket -> rules, and inside a bucket, rules
// that test one key against plain strings (`target.labels.env: { in: [prod, secret] }`) indexed
// by those strings, so a request tries only the rules that can apply to it.

/** Below this many rules on one key, trying them one by one is as fast as reading the index. */
const MIN_INDEXED = 4;

interface MutableSubjectIndex {
  anyAuthenticated: CompiledRule[];
  anonymous: CompiledRule[];
  byUser: Map<string, CompiledRule[]>;
  byGroup: Map<string, CompiledRule[]>;
}

function emptyIndex(): MutableSubjectIndex {
  return { anyAuthenticated: [], anonymous: [], byUser: new Map(), byGroup: new Map() };
}

function addToIndex(index: MutableSubjectIndex, rule: CompiledRule): void {
  const s = rule.subjects;
  if (s.anonymous) index.anonymous.push(rule);
  if (s.anyAuthenticated) {
    // `*` covers every authenticated caller; listing the rule per user/group too would only
    // make decisions look at it twice.
    index.anyAuthenticated.push(rule);
    return;
  }
  for (const u of s.users) pushTo(index.byUser, u, rule);
  for (const g of s.groups) pushTo(index.byGroup, g, rule);
}

function pushTo<T>(map: Map<string, T[]>, key: string, item: T): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [item]);
  else list.push(item);
}

function buildPolicy(rules: readonly CompiledRule[], files: readonly string[]): CompiledPolicy {
  const builders = new Map<string, { deny: MutableSubjectIndex; allow: MutableSubjectIndex; needs: { body: boolean; target: boolean; facts: boolean } }>();
  for (const rule of rules) {
    for (const action of rule.actions) {
      let b = builders.get(action);
      if (b === undefined) {
        b = { deny: emptyIndex(), allow: emptyIndex(), needs: { body: false, target: false, facts: false } };
        builders.set(action, b);
      }
      addToIndex(rule.effect === 'deny' ? b.deny : b.allow, rule);
      for (const c of rule.conditions) {
        if (c.source.kind === 'body') b.needs.body = true;
        else if (c.source.kind === 'target') b.needs.target = true;
        else if (c.source.kind === 'fact') b.needs.facts = true;
      }
    }
  }
  // Many actions share the same rule lists (a rule names several actions, globs expand): build
  // each distinct bucket once.
  const buckets = new Map<string, RuleBucket>();
  const bucketOf = (list: readonly CompiledRule[]): RuleBucket => {
    const id = list.map((r) => r.index).join(',');
    let bucket = buckets.get(id);
    if (bucket === undefined) {
      bucket = buildBucket(list);
      buckets.set(id, bucket);
    }
    return bucket;
  };
  const freezeIndex = (i: MutableSubjectIndex): SubjectIndex =>
    Object.freeze({
      hasRules: i.anyAuthenticated.length > 0 || i.anonymous.length > 0 || i.byUser.size > 0 || i.byGroup.size > 0,
      anyAuthenticated: bucketOf(i.anyAuthenticated),
      anonymous: bucketOf(i.anonymous),
      byUser: mapValues(i.byUser, bucketOf),
      byGroup: mapValues(i.byGroup, bucketOf),
    });
  const byAction = new Map<string, ActionRules>();
  for (const [action, b] of builders) {
    byAction.set(action, Object.freeze({ deny: freezeIndex(b.deny), allow: freezeIndex(b.allow), needs: Object.freeze(b.needs) as FactNeeds }));
  }
  return Object.freeze({ rules: Object.freeze([...rules]), byAction, files: Object.freeze([...files]) });
}

function mapValues<A, B>(map: ReadonlyMap<string, A>, f: (a: A) => B): Map<string, B> {
  const out = new Map<string, B>();
  for (const [k, v] of map) out.set(k, f(v));
  return out;
}

/**
 * Split one bucket's rules (policy order) into value indexes and the rest. Each rule is indexed
 * by at most one of its conditions: the indexable one whose key most rules of the bucket share,
 * so that one read of the request serves as many rules as possible.
 */
function buildBucket(rules: readonly CompiledRule[]): RuleBucket {
  const shared = new Map<string, number>();
  for (const r of rules) {
    for (const c of r.conditions) if (c.holdsOnlyFor !== undefined) shared.set(c.key, (shared.get(c.key) ?? 0) + 1);
  }
  const groups = new Map<string, { rule: CompiledRule; condition: CompiledCondition }[]>();
  let scan: CompiledRule[] = [];
  for (const rule of rules) {
    let pick: CompiledCondition | undefined;
    for (const c of rule.conditions) {
      if (c.holdsOnlyFor !== undefined && (pick === undefined || shared.get(c.key)! > shared.get(pick.key)!)) pick = c;
    }
    if (pick === undefined) scan.push(rule);
    else pushTo(groups, pick.key, { rule, condition: pick });
  }
  const indexes: ValueIndex[] = [];
  let dissolved = false;
  for (const members of groups.values()) {
    if (members.length < MIN_INDEXED) {
      for (const m of members) scan.push(m.rule);
      dissolved = true;
      continue;
    }
    const byValue = new Map<string, CompiledRule[]>();
    for (const { rule, condition } of members) for (const s of condition.holdsOnlyFor!) pushTo(byValue, s, rule);
    indexes.push(Object.freeze({ condition: members[0]!.condition, byValue, all: Object.freeze(members.map((m) => m.rule)) }));
  }
  if (dissolved) scan = scan.sort((a, b) => a.index - b.index);
  return Object.freeze({ rules: Object.freeze([...rules]), scan: Object.freeze(scan), indexes: Object.freeze(indexes) });
}
