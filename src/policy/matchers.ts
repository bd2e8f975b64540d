/**
 * Matcher evaluation (three-valued) and the text that describes a matcher in reasons.
 *
 * Values and literals compare type-aware:
 * - A value that is absent (`undefined`, JSON `null`) takes the zero value of the literal's
 *   type: `false`, `0`, `""`, empty list, as Go's decoder leaves an absent field.
 * - A query value is a string; dockerd gives it a type only when its handler reads it:
 *   booleans with httputils.BoolValue (moby api/server/httputils/form.go: after trimming and
 *   lower-casing, "", "0", "no", "false" and "none" are false, anything else is true), numbers
 *   with strconv.ParseInt. So `query.force: true` holds for `force=1`, `force=True`, `force=yes`,
 *   and `query.force: false` holds when `force` is absent or `0`. A string literal compares
 *   with the raw query text, exactly. A number literal equals only a query value that parses
 *   as that integer; `lte`/`gte` on a query value that is absent or not an integer are
 *   indeterminate (an absent `t` or `tail` means the handler's default, not 0).
 *   Caveat for deny rules: dockerd also accepts other spellings of some values (`signal=9`,
 *   `signal=sigkill` for KILL) and defaults for absent ones; normalising those is the facts
 *   deriver's job, so prefer allow rules on raw query values.
 * - Values of different types are not equal (`"true"` in a JSON body is not `true`; dockerd
 *   would refuse that body anyway).
 *
 * UNKNOWN (indeterminate) comes out of a matcher when it cannot be evaluated: ordering a value
 * that is not a number, `each`/`any`/`subsetOf` on a value that is not a list, `under`/`glob`
 * on a value that is not a string, `${subject.name}` for a caller without a name. `not` keeps
 * UNKNOWN, so a negation never turns "cannot tell" into "holds".
 */
import type { DecisionInput, Identity } from '../types.js';
import { readSource, UNAVAILABLE, UNREADABLE } from './facts.js';
import { FAIL, HOLD, UNKNOWN } from './types.js';
import type { Literal, Matcher, SetItem, Tri, ValueSource } from './types.js';

const EMPTY: readonly unknown[] = Object.freeze([]);

export function evalMatcher(m: Matcher, value: unknown, queryText: boolean, subject: Identity): Tri {
  switch (m.kind) {
    case 'eq':
      return eqLiteral(value, m.value, queryText, subject);
    case 'in':
      if (Array.isArray(value)) return UNKNOWN;
      return inItems(value, m.items, queryText, subject);
    case 'subsetOf': {
      const list = asList(value, queryText);
      if (list === null) return UNKNOWN;
      let result: Tri = HOLD;
      for (const item of list) {
        const t = inItems(item, m.items, false, subject);
        if (t === FAIL) return FAIL;
        if (t === UNKNOWN) result = UNKNOWN;
      }
      return result;
    }
    case 'each': {
      const list = asList(value, queryText);
      if (list === null) return UNKNOWN;
      let result: Tri = HOLD;
      for (const item of list) {
        const t = evalMatcher(m.inner, item, false, subject);
        if (t === FAIL) return FAIL;
        if (t === UNKNOWN) result = UNKNOWN;
      }
      return result;
    }
    case 'any': {
      const list = asList(value, queryText);
      if (list === null) return UNKNOWN;
      let result: Tri = FAIL;
      for (const item of list) {
        const t = evalMatcher(m.inner, item, false, subject);
        if (t === HOLD) return HOLD;
        if (t === UNKNOWN) result = UNKNOWN;
      }
      return result;
    }
    case 'under': {
      const s = value === undefined || value === null ? '' : value;
      if (typeof s !== 'string') return UNKNOWN;
      const segments = cleanAbsolutePath(s);
      // A relative (or empty) path is under no absolute prefix.
      if (segments === null) return FAIL;
      for (const prefix of m.prefixes) if (hasPrefix(segments, prefix)) return HOLD;
      return FAIL;
    }
    case 'glob': {
      const s = value === undefined || value === null ? '' : value;
      if (typeof s !== 'string') return UNKNOWN;
      return m.test(s) ? HOLD : FAIL;
    }
    case 'exists':
      return isPresent(value) === m.want ? HOLD : FAIL;
    case 'lte':
    case 'gte': {
      const n = toNumber(value, queryText);
      if (n === null) return UNKNOWN;
      return (m.kind === 'lte' ? n <= m.bound : n >= m.bound) ? HOLD : FAIL;
    }
    case 'not': {
      const t = evalMatcher(m.inner, value, queryText, subject);
      return t === HOLD ? FAIL : t === FAIL ? HOLD : UNKNOWN;
    }
    case 'all': {
      let result: Tri = HOLD;
      for (const part of m.parts) {
        const t = evalMatcher(part, value, queryText, subject);
        if (t === FAIL) return FAIL;
        if (t === UNKNOWN) result = UNKNOWN;
      }
      return result;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Conditions compiled once at load time. The request path calls `test(input)` for each condition
// of each rule it tries. Equality, `in`, `glob`, `under`, `each`/`any` and `not` become functions
// with the matcher's literals captured (no dispatch on the matcher's kind, no per-call objects);
// `subsetOf`, `exists`, `lte`/`gte`, `${subject.groups}` and query lists use evalMatcher. The
// compiled functions must return exactly what evalMatcher returns: test/unit/policy-index.test.ts
// compares them on many values.

/** readSource + evalMatcher: the definition every specialised condition test must agree with. */
export function evalConditionGeneric(source: ValueSource, m: Matcher, input: DecisionInput): Tri {
  const value = readSource(source, input);
  if (value === UNAVAILABLE || value === UNREADABLE) return UNKNOWN;
  return evalMatcher(m, value, source.kind === 'query', input.subject);
}

export function compileConditionTest(source: ValueSource, m: Matcher): (input: DecisionInput) => Tri {
  const test = compileValueTest(m, source.kind === 'query');
  return (input) => {
    const value = readSource(source, input);
    if (value === UNAVAILABLE || value === UNREADABLE) return UNKNOWN;
    return test(value, input.subject);
  };
}

type ValueTest = (value: unknown, subject: Identity) => Tri;

/** evalMatcher(m, value, queryText, subject), with the matcher's literals captured. */
function compileValueTest(m: Matcher, queryText: boolean): ValueTest {
  switch (m.kind) {
    case 'eq': {
      const lit = m.value;
      if (lit.kind === 'scalar' && typeof lit.value === 'string') {
        const want = lit.value;
        // An absent body field or label is the zero value "" (a query value is always a string).
        const zero = want === '' ? HOLD : FAIL;
        // A number, boolean, list or object never equals a string.
        return (v) => (typeof v === 'string' ? (v === want ? HOLD : FAIL) : v === undefined || v === null ? zero : FAIL);
      }
      if (lit.kind === 'scalar') {
        const want = lit.value;
        if (queryText) {
          if (typeof want === 'boolean') return (v) => (goBoolValue(v as string) === want ? HOLD : FAIL);
          if (typeof want === 'number') return (v) => (parseQueryNumber(v as string) === want ? HOLD : FAIL);
        }
        const zero = want === (typeof want === 'boolean' ? false : 0) ? HOLD : FAIL;
        return (v) => (v === undefined || v === null ? zero : v === want ? HOLD : FAIL);
      }
      if (lit.kind === 'subject.name') {
        return (v, subject) => {
          const name = subject.user;
          if (typeof name !== 'string' || name === '') return UNKNOWN;
          return v === name ? HOLD : FAIL;
        };
      }
      break;
    }
    case 'in': {
      const items = stringsAndGlobs(m.items);
      if (items === undefined) break;
      const set = new Set(items.strings);
      const globs = items.globs;
      const holds = (s: string): boolean => {
        if (set.has(s)) return true;
        for (let i = 0; i < globs.length; i++) if (globs[i]!(s)) return true;
        return false;
      };
      const zero = holds('') ? HOLD : FAIL;
      // `in` on a list is indeterminate; any other non-string equals no string and matches no glob.
      return (v) => (typeof v === 'string' ? (holds(v) ? HOLD : FAIL) : v === undefined || v === null ? zero : Array.isArray(v) ? UNKNOWN : FAIL);
    }
    case 'glob': {
      const test = m.test;
      const zero = test('') ? HOLD : FAIL;
      return (v) => (typeof v === 'string' ? (test(v) ? HOLD : FAIL) : v === undefined || v === null ? zero : UNKNOWN);
    }
    case 'under': {
      const prefixes = m.prefixes;
      const texts = m.text;
      return (v) => {
        const s = v === undefined || v === null ? '' : v;
        if (typeof s !== 'string') return UNKNOWN;
        return isUnder(s, prefixes, texts) ? HOLD : FAIL;
      };
    }
    case 'each':
    case 'any': {
      // A query value is not a list: asList gives null, indeterminate.
      if (queryText) break;
      const inner = compileValueTest(m.inner, false);
      const each = m.kind === 'each';
      return (v, subject) => {
        if (v === undefined || v === null) return each ? HOLD : FAIL;
        if (!Array.isArray(v)) return UNKNOWN;
        let result: Tri = each ? HOLD : FAIL;
        for (let i = 0; i < v.length; i++) {
          const t = inner(v[i], subject);
          if (t === (each ? FAIL : HOLD)) return t;
          if (t === UNKNOWN) result = UNKNOWN;
        }
        return result;
      };
    }
    case 'not': {
      const inner = compileValueTest(m.inner, queryText);
      return (v, subject) => {
        const t = inner(v, subject);
        return t === HOLD ? FAIL : t === FAIL ? HOLD : UNKNOWN;
      };
    }
    default:
      break;
  }
  return (v, subject) => evalMatcher(m, v, queryText, subject);
}

/** The literals of an `in` when every item is a plain string (no glob, no substitution). */
function plainStrings(items: readonly SetItem[]): string[] | undefined {
  const split = stringsAndGlobs(items);
  return split === undefined || split.globs.length > 0 ? undefined : split.strings;
}

/** The items of an `in` split into string literals and glob tests; undefined for any other item. */
function stringsAndGlobs(items: readonly SetItem[]): { strings: string[]; globs: ((s: string) => boolean)[] } | undefined {
  const strings: string[] = [];
  const globs: ((s: string) => boolean)[] = [];
  for (const item of items) {
    if (item.kind === 'glob') globs.push(item.test);
    else if (item.kind === 'scalar' && typeof item.value === 'string') strings.push(item.value);
    else return undefined;
  }
  return { strings, globs };
}

/**
 * The strings that can make the matcher hold, when there is such a finite set: equality or `in`
 * on plain string literals, or an `all` with such a part. The rule index (compile.ts) relies on
 * this: the condition does not fail only when the value is one of these strings (an absent value
 * counts as ""), cannot be read, or is not a string (indeterminate `in` on a list).
 */
export function holdsOnlyFor(m: Matcher): ReadonlySet<string> | undefined {
  switch (m.kind) {
    case 'eq':
      return m.value.kind === 'scalar' && typeof m.value.value === 'string' ? new Set([m.value.value]) : undefined;
    case 'in': {
      const strings = plainStrings(m.items);
      return strings === undefined ? undefined : new Set(strings);
    }
    case 'all':
      for (const part of m.parts) {
        const set = holdsOnlyFor(part);
        if (set !== undefined) return set;
      }
      return undefined;
    default:
      return undefined;
  }
}

/** Does the matcher's description depend on the caller (`${subject.name}`, `${subject.groups}`)? */
export function mentionsSubject(m: Matcher): boolean {
  switch (m.kind) {
    case 'eq':
      return m.value.kind !== 'scalar';
    case 'in':
    case 'subsetOf':
      return m.items.some((i) => i.kind === 'subject.name' || i.kind === 'subject.groups');
    case 'each':
    case 'any':
    case 'not':
      return mentionsSubject(m.inner);
    case 'all':
      return m.parts.some(mentionsSubject);
    default:
      return false;
  }
}

function eqLiteral(value: unknown, lit: Literal, queryText: boolean, subject: Identity): Tri {
  switch (lit.kind) {
    case 'subject.name': {
      // A caller without a name must not "own" every object whose owner is unset ("").
      const name = subject.user;
      if (typeof name !== 'string' || name === '') return UNKNOWN;
      return value === name ? HOLD : FAIL;
    }
    case 'subject.groups': {
      const s = value === undefined || value === null ? '' : value;
      if (typeof s !== 'string' || s === '') return FAIL;
      for (const g of subject.groups) if (g === s) return HOLD;
      return FAIL;
    }
    case 'scalar':
      return eqScalar(value, lit.value, queryText) ? HOLD : FAIL;
  }
}

function eqScalar(value: unknown, lit: string | number | boolean, queryText: boolean): boolean {
  if (queryText) {
    const s = value as string;
    if (typeof lit === 'boolean') return goBoolValue(s) === lit;
    if (typeof lit === 'number') {
      const n = parseQueryNumber(s);
      return n !== null && n === lit;
    }
    return s === lit;
  }
  if (value === undefined || value === null) {
    return lit === (typeof lit === 'boolean' ? false : typeof lit === 'number' ? 0 : '');
  }
  return value === lit;
}

function inItems(value: unknown, items: readonly SetItem[], queryText: boolean, subject: Identity): Tri {
  let result: Tri = FAIL;
  for (const item of items) {
    let t: Tri;
    if (item.kind === 'glob') {
      const s = value === undefined || value === null ? '' : value;
      t = typeof s === 'string' && item.test(s) ? HOLD : FAIL;
    } else {
      t = eqLiteral(value, item, queryText, subject);
    }
    if (t === HOLD) return HOLD;
    if (t === UNKNOWN) result = UNKNOWN;
  }
  return result;
}

function asList(value: unknown, queryText: boolean): readonly unknown[] | null {
  if (queryText) return null;
  if (value === undefined || value === null) return EMPTY;
  return Array.isArray(value) ? value : null;
}

/** `exists`: present and non-empty. `false` and `0` are present; `""`, `[]`, `{}` are not. */
export function isPresent(value: unknown): boolean {
  if (value === undefined || value === null || value === '') return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object') {
    for (const k in value) if (Object.prototype.hasOwnProperty.call(value, k)) return true;
    return false;
  }
  return true;
}

function toNumber(value: unknown, queryText: boolean): number | null {
  if (queryText) return parseQueryNumber(value as string);
  if (value === undefined || value === null) return 0;
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

const INTEGER = /^[+-]?[0-9]+$/;

/**
 * A query number as dockerd reads one: strconv.ParseInt(s, 10, 64) (Int64ValueOrDefault,
 * `t`, `tail`, `since`...). Anything else, "" included, is not a number: null.
 */
export function parseQueryNumber(s: string): number | null {
  if (!INTEGER.test(s)) return null;
  const n = Number(s);
  // Beyond 2^53 the comparison would be inexact; Go would also refuse beyond 2^63.
  return Number.isSafeInteger(n) ? n : null;
}

/**
 * moby api/server/httputils/form.go BoolValue:
 * `s := strings.ToLower(strings.TrimSpace(v)); return !(s == "" || s == "0" || s == "no" || s == "false" || s == "none")`.
 * Go's TrimSpace trims Unicode White_Space (U+0085 and U+00A0 included, U+FEFF not), unlike
 * String.prototype.trim; a difference would let `force=%EF%BB%BFfalse` read false here and
 * true in dockerd. Lower-casing only ASCII is exact for these words: no non-ASCII rune
 * lower-cases to one of their letters in Go.
 */
export function goBoolValue(raw: string): boolean {
  let start = 0;
  let end = raw.length;
  while (start < end && isGoSpace(raw.charCodeAt(start))) start++;
  while (end > start && isGoSpace(raw.charCodeAt(end - 1))) end--;
  const s = raw.slice(start, end).replace(/[A-Z]/g, (c) => c.toLowerCase());
  return !(s === '' || s === '0' || s === 'no' || s === 'false' || s === 'none');
}

function isGoSpace(c: number): boolean {
  return (
    (c >= 0x09 && c <= 0x0d) || c === 0x20 || c === 0x85 || c === 0xa0 || c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000
  );
}

/**
 * Path segments of an absolute path after Go's path.Clean (`//`, `.`, `..` resolved; `..` above
 * the root stays at the root), or null for a relative or empty path.
 * `/srv/data/../etc` -> [etc], so it is not under /srv/data.
 */
export function cleanAbsolutePath(p: string): string[] | null {
  if (!p.startsWith('/')) return null;
  const out: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return out;
}

/** An empty segment (`//`), or `.` / `..` as a whole segment: path.Clean would change the path. */
const UNCLEAN = /\/\/|\/\.\.?(?:\/|$)/;

/**
 * The `under` test without splitting a path that needs no cleaning (the usual case): then it is
 * under a prefix when it equals the prefix's text or continues it with "/". `texts` are the
 * cleaned prefixes as `/a/b` (`/` for the root), never with a trailing "/", so a trailing "/"
 * on the path changes nothing. Any other path goes through cleanAbsolutePath.
 */
function isUnder(p: string, prefixes: readonly (readonly string[])[], texts: readonly string[]): boolean {
  if (p.charCodeAt(0) !== 0x2f) return false;
  if (UNCLEAN.test(p)) {
    const segments = cleanAbsolutePath(p)!;
    for (const prefix of prefixes) if (hasPrefix(segments, prefix)) return true;
    return false;
  }
  for (const t of texts) {
    if (t === '/' || p === t || (p.startsWith(t) && p.charCodeAt(t.length) === 0x2f)) return true;
  }
  return false;
}

function hasPrefix(segments: readonly string[], prefix: readonly string[]): boolean {
  if (prefix.length > segments.length) return false;
  for (let i = 0; i < prefix.length; i++) if (segments[i] !== prefix[i]) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Descriptions, for reasons and explanations. `subject` resolves ${subject.*} to what the
// caller has, so a reason shows the real value it compared with.

const MAX_RENDER = 80;

/** A request value in a reason: JSON text, cut to a readable length; `nothing` when absent. */
export function renderValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  let text: string;
  if (typeof value === 'string') text = jsonString(value);
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  return text.length > MAX_RENDER ? `${text.slice(0, MAX_RENDER - 3)}...` : text;
}

/**
 * JSON.stringify(s): printable ASCII other than `"` and `\` stands for itself, so most values
 * need no escaping and skip JSON.stringify's cost (a deny reason renders one or two strings).
 */
export function jsonString(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return JSON.stringify(s);
  }
  return `"${s}"`;
}

function renderLiteral(lit: Literal, subject: Identity | undefined): string {
  switch (lit.kind) {
    case 'scalar':
      return typeof lit.value === 'string' ? jsonString(lit.value) : JSON.stringify(lit.value);
    case 'subject.name':
      if (subject === undefined) return '${subject.name}';
      return typeof subject.user === 'string' ? jsonString(subject.user) : JSON.stringify(subject.user);
    case 'subject.groups':
      return subject !== undefined ? JSON.stringify(subject.groups) : '${subject.groups}';
  }
}

function renderItems(items: readonly SetItem[], subject: Identity | undefined): string {
  const parts: string[] = [];
  for (const item of items) {
    if (item.kind === 'glob') parts.push(JSON.stringify(item.pattern));
    else if (item.kind === 'subject.groups' && subject !== undefined) for (const g of subject.groups) parts.push(JSON.stringify(g));
    else parts.push(renderLiteral(item, subject));
  }
  return `[${parts.join(', ')}]`;
}

/** `== "TERM"`, `in ["busybox:*"]`, `each under ["/srv/data"]`, `!= "alice"`. */
export function describeMatcher(m: Matcher, subject: Identity | undefined): string {
  switch (m.kind) {
    case 'eq':
      if (m.value.kind === 'subject.groups') return `in ${renderLiteral(m.value, subject)}`;
      return `== ${renderLiteral(m.value, subject)}`;
    case 'in':
      return `in ${renderItems(m.items, subject)}`;
    case 'subsetOf':
      return `subsetOf ${renderItems(m.items, subject)}`;
    case 'each':
      return `each ${describeMatcher(m.inner, subject)}`;
    case 'any':
      return `any ${describeMatcher(m.inner, subject)}`;
    case 'under':
      return `under [${m.text.map((t) => JSON.stringify(t)).join(', ')}]`;
    case 'glob':
      return `glob ${JSON.stringify(m.pattern)}`;
    case 'exists':
      return m.want ? 'present' : 'absent';
    case 'lte':
      return `<= ${m.bound}`;
    case 'gte':
      return `>= ${m.bound}`;
    case 'not': {
      const inner = m.inner;
      if (inner.kind === 'eq' && inner.value.kind !== 'subject.groups') return `!= ${renderLiteral(inner.value, subject)}`;
      if (inner.kind === 'eq' || inner.kind === 'in') return `not ${describeMatcher(inner, subject)}`;
      if (inner.kind === 'exists') return inner.want ? 'absent' : 'present';
      return `not (${describeMatcher(inner, subject)})`;
    }
    case 'all':
      return m.parts.map((p) => describeMatcher(p, subject)).join(' and ');
  }
}
