/**
 * The compiled form of a policy. Everything a decision needs is resolved here at load time:
 * action globs are expanded against the catalogue, subjects become sets, value globs become
 * matcher functions. `decide()` only reads these structures.
 */
import type { Decision, DecisionInput } from '../types.js';

/** A load error, always with a position so `dockward policy check` can print `file:line:col`. */
export interface PolicyError {
  readonly file: string;
  /** 1-based; 0 when the error concerns the whole file (unreadable, no match for a pattern). */
  readonly line: number;
  /** 1-based; 0 together with `line` 0. */
  readonly column: number;
  readonly message: string;
}

/** Three-valued result of a condition. UNKNOWN is "cannot be evaluated": a fact is missing or a value has the wrong type. */
export const FAIL = 0;
export const HOLD = 1;
export const UNKNOWN = 2;
export type Tri = typeof FAIL | typeof HOLD | typeof UNKNOWN;

/** Where a condition reads its value from. */
export type ValueSource =
  /** `query.<name>`: the first value of the parameter, as dockerd's `r.Form.Get` reads it. */
  | { readonly kind: 'query'; readonly name: string }
  /** `body.<A.B.C>`: a field of the decoded JSON body; `folded` are the segments folded like Go's encoding/json. */
  | { readonly kind: 'body'; readonly path: readonly string[]; readonly folded: readonly string[] }
  /** `target.owner|team|name|image` or `target.labels.<key>` (label set). */
  | { readonly kind: 'target'; readonly field: 'owner' | 'team' | 'name' | 'image' | 'labels'; readonly label?: string }
  /** A derived fact from `input.facts`: `create.privileged`, `exec.user`, `create.labels` (+ label). */
  | { readonly kind: 'fact'; readonly fact: string; readonly label?: string };

/** A value written in the policy. `${subject.name}` / `${subject.groups}` are resolved per request. */
export type Literal =
  | { readonly kind: 'scalar'; readonly value: string | number | boolean }
  | { readonly kind: 'subject.name' }
  | { readonly kind: 'subject.groups' };

/** One item of an `in:` / `subsetOf:` set: a literal, or a glob compiled once at load time. */
export type SetItem =
  | Literal
  | { readonly kind: 'glob'; readonly pattern: string; readonly test: (s: string) => boolean };

export type Matcher =
  | { readonly kind: 'eq'; readonly value: Literal }
  | { readonly kind: 'in'; readonly items: readonly SetItem[] }
  | { readonly kind: 'subsetOf'; readonly items: readonly SetItem[] }
  | { readonly kind: 'each'; readonly inner: Matcher }
  | { readonly kind: 'any'; readonly inner: Matcher }
  /** Cleaned absolute prefixes, as segment lists (`/` is `[]`). */
  | { readonly kind: 'under'; readonly prefixes: readonly (readonly string[])[]; readonly text: readonly string[] }
  | { readonly kind: 'glob'; readonly pattern: string; readonly test: (s: string) => boolean }
  | { readonly kind: 'exists'; readonly want: boolean }
  | { readonly kind: 'lte' | 'gte'; readonly bound: number }
  | { readonly kind: 'not'; readonly inner: Matcher }
  /** Several matchers in one map (`{ gte: 1, lte: 8 }`): all must hold. */
  | { readonly kind: 'all'; readonly parts: readonly Matcher[] };

export interface CompiledCondition {
  /** The key as written: `query.signal`. */
  readonly key: string;
  readonly source: ValueSource;
  readonly matcher: Matcher;
  readonly line: number;
  readonly column: number;
  /**
   * The condition's result for a request: readSource + evalMatcher, specialised at load time
   * for the common matcher shapes (see matchers.ts compileConditionTest). decide() and explain()
   * both evaluate through it, so they cannot disagree.
   */
  readonly test: (input: DecisionInput) => Tri;
  /**
   * `query.signal == "TERM"`: the key and the matcher's description, when that does not depend
   * on the caller (no `${subject.*}`); built once so a reason only renders the request's value.
   */
  readonly expected: string | undefined;
  /**
   * The strings that can make the condition hold, when it is an equality or `in` on plain string
   * literals (possibly inside an `all`): the key a rule can be indexed by. See ValueIndex.
   */
  readonly holdsOnlyFor: ReadonlySet<string> | undefined;
}

/** `*` = any authenticated caller; `anonymous` only matches callers without credentials. */
export interface CompiledSubjects {
  readonly anyAuthenticated: boolean;
  readonly anonymous: boolean;
  readonly users: ReadonlySet<string>;
  readonly groups: ReadonlySet<string>;
  /** As written, for explanations. */
  readonly text: readonly string[];
}

export interface CompiledRule {
  readonly name: string;
  readonly effect: 'allow' | 'deny';
  /** Position in policy order (files in load order, rules in file order); lower wins when reporting. */
  readonly index: number;
  readonly file: string;
  readonly line: number;
  readonly subjects: CompiledSubjects;
  /** The action patterns as written. */
  readonly actionPatterns: readonly string[];
  /** The expanded action names. */
  readonly actions: ReadonlySet<string>;
  readonly conditions: readonly CompiledCondition[];
  readonly description?: string;
  /** Precomputed so that the allow path of `decide()` allocates nothing. */
  readonly allowDecision: Decision;
}

/**
 * Rules of one bucket that share one indexable condition key (`target.labels.env: { in: [...] }`):
 * a request reads the value once and only tries the rules whose literals contain it. A rule is
 * listed under every string that can make its condition hold; the condition itself is still
 * evaluated with the rest of the rule, so the index only has to find a superset of the rules
 * that can match:
 * - a string value: the rules listed under it (an absent value reads as "", as the matcher does);
 * - a value that cannot be read, or is not a string (a list is indeterminate for `in`): for deny
 *   rules every rule of the group (indeterminate holds for a deny rule: fail closed), for allow
 *   rules none (such a condition never holds).
 */
export interface ValueIndex {
  /** Any one of the rules' conditions on this key: what to read. */
  readonly condition: CompiledCondition;
  readonly byValue: ReadonlyMap<string, readonly CompiledRule[]>;
  /** Every rule of the group, in policy order. */
  readonly all: readonly CompiledRule[];
}

/** The rules of one effect, one action and one subject bucket. */
export interface RuleBucket {
  /** Every rule of the bucket, in policy order. */
  readonly rules: readonly CompiledRule[];
  /** The rules no value index covers, in policy order: tried one by one. */
  readonly scan: readonly CompiledRule[];
  readonly indexes: readonly ValueIndex[];
}

/**
 * The rules of one effect that name one action, bucketed by subject so a decision only
 * looks at the rules that can apply to the caller.
 */
export interface SubjectIndex {
  /** False when no rule of this effect names the action (most actions have no deny rules). */
  readonly hasRules: boolean;
  readonly anyAuthenticated: RuleBucket;
  readonly anonymous: RuleBucket;
  readonly byUser: ReadonlyMap<string, RuleBucket>;
  readonly byGroup: ReadonlyMap<string, RuleBucket>;
}

/** Which kinds of input the rules of one action read; lets the pipeline skip work nobody needs. */
export interface FactNeeds {
  readonly body: boolean;
  readonly target: boolean;
  /** Derived `create.*` / `exec.*` facts. */
  readonly facts: boolean;
}

export interface ActionRules {
  readonly deny: SubjectIndex;
  readonly allow: SubjectIndex;
  readonly needs: FactNeeds;
}

export interface CompiledPolicy {
  /** Every rule in policy order. */
  readonly rules: readonly CompiledRule[];
  /** Action name -> the rules that name it (after glob expansion). Actions no rule names are absent. */
  readonly byAction: ReadonlyMap<string, ActionRules>;
  /** The files the rules came from, in load order. */
  readonly files: readonly string[];
}
