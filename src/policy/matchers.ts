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
import type { Identity } from '../types.js';
import { FAIL, HOLD, UNKNOWN } from './types.js';
import type { Literal, Matcher, SetItem, Tri } from './types.js';

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
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > MAX_RENDER ? `${text.slice(0, MAX_RENDER - 3)}...` : text;
}

function renderLiteral(lit: Literal, subject: Identity | undefined): string {
  switch (lit.kind) {
    case 'scalar':
      return JSON.stringify(lit.value);
    case 'subject.name':
      return subject !== undefined ? JSON.stringify(subject.user) : '${subject.name}';
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
