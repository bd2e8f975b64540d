/**
 * Reads a JSON body the way dockerd (Go's encoding/json) will, or refuses it.
 *
 * Go matches object keys to struct fields case-insensitively, lets the last duplicate win and
 * MERGES repeated objects (`{"HostConfig":{"Privileged":true},"HostConfig":{}}` still creates a
 * privileged container), while JSON.parse keeps case variants apart and replaces repeated
 * objects. Any body where the two readings could differ is refused instead of guessed at:
 * two keys of one object that are equal under case folding, numbers a double cannot hold
 * exactly, and anything but one JSON value (Go's decoder ignores trailing data; we refuse it).
 */

export type JsonReadResult = { ok: true; value: unknown } | { ok: false; reason: string };

/** Go's EqualFold also folds U+017F (long s) to s and U+212A (Kelvin) to k. */
export function foldKey(key: string): string {
  // eslint-disable-next-line no-control-regex
  return /^[\x00-\x7f]*$/.test(key) ? key.toLowerCase() : key.toUpperCase().toLowerCase();
}

class Refusal extends Error {}

export function readDockerJson(text: string): JsonReadResult {
  let i = 0;
  const n = text.length;
  const ws = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
  };
  const fail = (what: string): never => {
    throw new Refusal(`${what} at offset ${i}`);
  };
  const value = (depth: number): unknown => {
    if (depth > 1000) fail('JSON nested too deeply');
    ws();
    const c = text[i];
    if (c === '{') return object(depth);
    if (c === '[') return array(depth);
    if (c === '"') return string();
    if (c === 't') return literal('true', true);
    if (c === 'f') return literal('false', false);
    if (c === 'n') return literal('null', null);
    return number();
  };
  const literal = <T>(word: string, v: T): T => {
    if (text.startsWith(word, i)) {
      i += word.length;
      return v;
    }
    return fail('invalid JSON');
  };
  const number = (): number => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m) return fail('invalid JSON');
    i += m[0].length;
    const v = Number(m[0]);
    if (!Number.isFinite(v)) fail(`number ${m[0]} out of range`);
    if (!m[2] && !m[3] && !Number.isSafeInteger(v)) fail(`integer ${m[0]} cannot be read exactly (beyond 2^53)`);
    return v;
  };
  const string = (): string => {
    const start = i;
    i++;
    let simple = true;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x22) break;
      if (c === 0x5c) {
        simple = false;
        i += 2;
        continue;
      }
      if (c < 0x20) fail('control character in JSON string');
      i++;
    }
    if (i >= n) fail('unterminated JSON string');
    i++;
    const raw = text.slice(start, i);
    if (simple) return raw.slice(1, -1);
    try {
      return JSON.parse(raw) as string;
    } catch {
      return fail('invalid escape in JSON string');
    }
  };
  const object = (depth: number): Record<string, unknown> => {
    i++;
    const out: Record<string, unknown> = Object.create(null);
    const seen = new Set<string>();
    ws();
    if (text[i] === '}') {
      i++;
      return out;
    }
    for (;;) {
      ws();
      if (text[i] !== '"') fail('expected a key');
      const key = string();
      const folded = foldKey(key);
      if (seen.has(folded)) fail(`key ${JSON.stringify(key)} appears twice (dockerd matches keys case-insensitively and merges repeats)`);
      seen.add(folded);
      ws();
      if (text[i] !== ':') fail('expected ":"');
      i++;
      out[key] = value(depth + 1);
      ws();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === '}') {
        i++;
        return out;
      }
      fail('expected "," or "}"');
    }
  };
  const array = (depth: number): unknown[] => {
    i++;
    const out: unknown[] = [];
    ws();
    if (text[i] === ']') {
      i++;
      return out;
    }
    for (;;) {
      out.push(value(depth + 1));
      ws();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === ']') {
        i++;
        return out;
      }
      fail('expected "," or "]"');
    }
  };
  try {
    const v = value(0);
    ws();
    if (i !== n) fail('data after the JSON value');
    return { ok: true, value: v };
  } catch (err) {
    if (err instanceof Refusal) return { ok: false, reason: err.message };
    return { ok: false, reason: 'invalid JSON' };
  }
}
