/**
 * Reads a JSON body the way dockerd (Go's encoding/json) will, or refuses it.
 *
 * dockerd 20.10 decodes request bodies with `json.NewDecoder(r.Body).Decode(&v)` (Go 1.19 for
 * the 20.10.24 build measured here). Where JSON.parse and Go read one document differently,
 * the gateway would authorise one request and the daemon execute another, so every such
 * document is refused instead of being guessed at:
 *
 * - Key matching: Go matches object keys to struct fields case-insensitively and MERGES
 *   repeated objects, the last duplicate winning per field
 *   (`{"HostConfig":{"Privileged":true},"HostConfig":{}}` creates a privileged container).
 *   Two keys of one object that Go could match to the same field are refused, whatever their
 *   spelling (`Privileged` / `privileged` / `PRIVILEGED`; `Binds` / `Bind\u017f`).
 * - Trailing data: `Decode` reads the first value and ignores the rest; refused.
 * - Numbers: integers a double cannot hold exactly (beyond 2^53) are refused; Go reads them
 *   exactly into int64 fields.
 * - Strings: escapes are decoded as Go's `unquote` does - an unpaired UTF-16 surrogate escape
 *   (`\ud800`) becomes U+FFFD, as in Go, where JSON.parse keeps a lone surrogate.
 * - Encoding: the body must be valid UTF-8. Go replaces each invalid byte inside a string
 *   with U+FFFD, byte by byte, while a WHATWG decoder replaces whole ill-formed sequences: the
 *   two could yield different strings, so invalid UTF-8 is refused. A byte order mark is a
 *   syntax error for Go and for this reader.
 *
 * Type mismatches (a string where Go expects a bool) are not this reader's business: Go
 * refuses those bodies (dockerd answers 400) and docker/facts.ts refuses them too.
 */

export type JsonReadResult = { ok: true; value: unknown } | { ok: false; reason: string };

// ---------------------------------------------------------------------------------------------
// Go's key folding.

/**
 * One code point folded the way encoding/json matches a key against a Docker field name.
 * Go 1.19 (fold.go: simpleLetterEqualFold / asciiEqualFold / equalFoldRight) and Go >= 1.21
 * (foldName: the smallest rune of the unicode.SimpleFold orbit) agree on what matters for
 * ASCII field names: ASCII letters match in either case, and the only non-ASCII runes that
 * match an ASCII letter are U+017F (long s, matches s/S) and U+212A (Kelvin sign, matches
 * k/K). A dotless i (`Privıleged`) does NOT match `Privileged` (measured against dockerd).
 * Between two non-ASCII spellings, upper-casing stands in for Go's folding: it can only make
 * more keys collide, which makes this reader refuse more, never less.
 */
function foldCodePoint(cp: number): number {
  if (cp < 0x80) return cp >= 0x61 && cp <= 0x7a ? cp - 0x20 : cp;
  if (cp === 0x17f) return 0x53;
  if (cp === 0x212a) return 0x4b;
  const up = String.fromCodePoint(cp).toUpperCase();
  const ucp = up.codePointAt(0)!;
  return ucp >= 0x80 && up.length === (ucp > 0xffff ? 2 : 1) ? ucp : cp;
}

// eslint-disable-next-line no-control-regex
const ASCII = /^[\x00-\x7f]*$/;

/** The folded form of a key: two keys Go could match to the same field have the same fold. */
export function goFoldKey(s: string): string {
  if (ASCII.test(s)) return s.toUpperCase();
  let out = '';
  for (const ch of s) out += String.fromCodePoint(foldCodePoint(ch.codePointAt(0)!));
  return out;
}

/** `goFoldKey(key) === folded`, without allocating. */
export function goFoldEquals(key: string, folded: string): boolean {
  let i = 0;
  let j = 0;
  while (i < key.length) {
    if (j >= folded.length) return false;
    const cp = key.codePointAt(i)!;
    i += cp > 0xffff ? 2 : 1;
    const fcp = folded.codePointAt(j)!;
    j += fcp > 0xffff ? 2 : 1;
    if (foldCodePoint(cp) !== fcp) return false;
  }
  return j === folded.length;
}

// ---------------------------------------------------------------------------------------------
// The reader.

class Refusal extends Error {}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Read `input` (the body bytes, or text already decoded) as dockerd would, or say why not.
 * Objects come back without a prototype, so a key such as `__proto__` is an ordinary key.
 */
export function readDockerJson(input: string | Uint8Array): JsonReadResult {
  let text: string;
  if (typeof input === 'string') text = input;
  else {
    try {
      text = utf8.decode(input);
    } catch {
      return { ok: false, reason: 'the body is not valid UTF-8 (Go would replace the bad bytes; the two readings could differ)' };
    }
  }
  return readText(text);
}

function readText(text: string): JsonReadResult {
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
  const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
  const number = (): number => {
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) return fail('invalid JSON');
    i += m[0].length;
    const v = Number(m[0]);
    if (!Number.isFinite(v)) fail(`number ${m[0].slice(0, 40)} out of range`);
    if (!m[1] && !m[2] && !Number.isSafeInteger(v)) fail(`integer ${m[0].slice(0, 40)} cannot be read exactly (beyond 2^53)`);
    return v;
  };
  const hex4 = (at: number): number => {
    if (at + 4 > n) return -1;
    let v = 0;
    for (let k = at; k < at + 4; k++) {
      const c = text.charCodeAt(k);
      const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x41 && c <= 0x46 ? c - 0x37 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;
      if (d < 0) return -1;
      v = v * 16 + d;
    }
    return v;
  };
  const string = (): string => {
    i++;
    const start = i;
    // Fast path: no escapes.
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return text.slice(start, i - 1);
      }
      if (c === 0x5c) break;
      if (c < 0x20) fail('control character in JSON string');
      i++;
    }
    let out = text.slice(start, i);
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return out;
      }
      if (c < 0x20) fail('control character in JSON string');
      if (c !== 0x5c) {
        out += text[i];
        i++;
        continue;
      }
      const e = text[i + 1];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          const u = hex4(i + 2);
          if (u < 0) fail('invalid escape in JSON string');
          i += 6;
          // Go's unquote: a surrogate escape followed by an escape that completes a valid pair
          // is one rune; any other surrogate is U+FFFD, and what follows is read on its own.
          if (u >= 0xd800 && u < 0xe000) {
            if (u < 0xdc00 && text[i] === '\\' && text[i + 1] === 'u') {
              const lo = hex4(i + 2);
              if (lo >= 0xdc00 && lo < 0xe000) {
                out += String.fromCharCode(u, lo);
                i += 6;
                continue;
              }
            }
            out += '\ufffd';
            continue;
          }
          out += String.fromCharCode(u);
          continue;
        }
        default:
          fail('invalid escape in JSON string');
      }
      i += 2;
    }
    return fail('unterminated JSON string');
  };
  const object = (depth: number): Record<string, unknown> => {
    i++;
    const out: Record<string, unknown> = Object.create(null);
    const seen = new Map<string, string>();
    ws();
    if (text[i] === '}') {
      i++;
      return out;
    }
    for (;;) {
      ws();
      if (text[i] !== '"') fail('expected a key');
      const key = string();
      const folded = goFoldKey(key);
      const before = seen.get(folded);
      if (before !== undefined) {
        const also = before === key ? '' : `, also spelled ${JSON.stringify(before)}`;
        fail(`key ${JSON.stringify(key)} appears twice${also} (dockerd matches keys case-insensitively and merges repeats)`);
      }
      seen.set(folded, key);
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
    if (i !== n) fail('data after the JSON value (dockerd would ignore it)');
    return { ok: true, value: v };
  } catch (err) {
    if (err instanceof Refusal) return { ok: false, reason: err.message };
    // A stack overflow on pathological input is a refusal too, never a crash.
    return { ok: false, reason: 'invalid JSON' };
  }
}

/**
 * Sets one top-level member of a JSON object document, leaving every other byte as it was:
 * the daemon must get the body the policy read, not a re-serialisation of it (`1.5e7` stays
 * `1.5e7`). The member is found with Go's key folding, so `labels` is replaced in place rather
 * than joined by a second spelling that dockerd would merge. `text` must already have been
 * accepted by readDockerJson.
 */
export function setTopLevelMember(text: string, key: string, valueJson: string): string {
  const folded = goFoldKey(key);
  let i = text.indexOf('{') + 1;
  const skipWs = () => {
    while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++;
  };
  const skipString = () => {
    i++;
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
  };
  const skipValue = () => {
    let depth = 0;
    for (;;) {
      const c = text[i]!;
      if (c === '"') {
        skipString();
        if (depth === 0) return;
      } else if (c === '{' || c === '[') {
        depth++;
        i++;
      } else if (c === '}' || c === ']') {
        depth--;
        i++;
        if (depth === 0) return;
      } else if (depth === 0) {
        // A number or a literal: it ends where the member does.
        while (i < text.length && !',} \t\r\n'.includes(text[i]!)) i++;
        return;
      } else {
        i++;
      }
    }
  };
  skipWs();
  if (text[i] === '}') return `${text.slice(0, i)}${JSON.stringify(key)}:${valueJson}${text.slice(i)}`;
  for (;;) {
    skipWs();
    const keyStart = i;
    skipString();
    const name = JSON.parse(text.slice(keyStart, i)) as string;
    skipWs();
    i++; // ':'
    skipWs();
    const valueStart = i;
    skipValue();
    if (goFoldKey(name) === folded) return `${text.slice(0, valueStart)}${valueJson}${text.slice(i)}`;
    skipWs();
    if (text[i] === '}') {
      return `${text.slice(0, i)},${JSON.stringify(key)}:${valueJson}${text.slice(i)}`;
    }
    i++; // ','
  }
}
