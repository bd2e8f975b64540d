import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { goFoldEquals, goFoldKey, readDockerJson } from '../../src/docker/json.js';

describe('reading JSON bodies as dockerd does', () => {
  it.each([
    ['a create body', '{"Image":"busybox:local","HostConfig":{"Privileged":false,"Binds":["/srv:/srv"]}}', { Image: 'busybox:local', HostConfig: { Privileged: false, Binds: ['/srv:/srv'] } }],
    ['escapes', '{"Cmd":["a\\u0041\\n\\"b\\/\\b\\f\\r\\t\\\\"]}', { Cmd: ['aA\n"b/\b\f\r\t\\'] }],
    ['surrounding whitespace', ' \n{"a":1}\r\n ', { a: 1 }],
    ['null', '{"HostConfig":null}', { HostConfig: null }],
    ['numbers', '{"Memory":1073741824,"CpuShares":-2,"f":1.5e3,"z":-0}', { Memory: 1073741824, CpuShares: -2, f: 1500, z: -0 }],
    ['the largest exact integer', '{"n":9007199254740991}', { n: 9007199254740991 }],
    ['an escaped surrogate pair (one rune)', '{"a":"\\ud83d\\ude00"}', { a: '\u{1f600}' }],
    // Go's unquote turns every unpaired surrogate escape into U+FFFD; JSON.parse keeps it.
    ['a lone high surrogate escape (U+FFFD, as Go)', '{"a":"x\\ud800y"}', { a: 'x\ufffdy' }],
    ['a lone low surrogate escape (U+FFFD, as Go)', '{"a":"\\udc00"}', { a: '\ufffd' }],
    ['a high surrogate before a non-surrogate escape', '{"a":"\\ud800\\u0041"}', { a: '\ufffdA' }],
    ['two high surrogates then a low one', '{"a":"\\ud800\\ud800\\udc00"}', { a: '\ufffd\u{10000}' }],
    ['a raw astral character', '{"a":"\u{1f600}"}', { a: '\u{1f600}' }],
    ['an escaped key, folded like any other', '{"Privil\\u0065ged":true}', { Privileged: true }],
    ['keys that only look alike (dotless i is not i for Go)', '{"Privileged":true,"Priv\u0131leged":false}', { Privileged: true, 'Priv\u0131leged': false }],
    ['__proto__ as an ordinary key', '{"__proto__":{"x":1}}', Object.assign(Object.create(null), { ['__proto__']: { x: 1 } })],
  ])('reads %s', (_n, text, value) => {
    const r = readDockerJson(text);
    expect(r).toEqual({ ok: true, value });
  });

  it.each([
    // Go merges repeated objects: the first HostConfig's Privileged survives the second.
    ['a repeated key', '{"HostConfig":{"Privileged":true},"HostConfig":{}}', /"HostConfig" appears twice/],
    ['two spellings of one key', '{"HostConfig":{"Privileged":false,"privileged":true}}', /key "privileged" appears twice, also spelled "Privileged"/],
    ['an escaped spelling of a key', '{"Privileged":false,"Privil\\u0065ged":true}', /"Privileged" appears twice/],
    ['a Kelvin-sign spelling (Go folds U+212A to k)', '{"\u212Aey":1,"key":2}', /key "key" appears twice, also spelled "\u212Aey"/],
    ['a long-s spelling (Go folds U+017F to s)', '{"Binds":1,"Bind\u017F":2}', /appears twice, also spelled "Binds"/],
    ['trailing data Go would ignore', '{"Image":"a"} {"Image":"b"}', /data after the JSON value/],
    ['an integer beyond 2^53', '{"Memory":9007199254740993}', /beyond 2\^53/],
    ['a number out of range', '{"n":1e400}', /out of range/],
    ['a raw control character', '{"a":"x\u0001"}', /control character/],
    ['a raw control character after an escape', '{"a":"\\n\u0001"}', /control character/],
    ['a bad escape', '{"a":"\\x"}', /invalid escape/],
    ['a short \\u escape', '{"a":"\\u12"}', /invalid escape/],
    ['a trailing comma', '{"a":1,}', /expected a key/],
    ['single quotes', "{'a':1}", /expected a key/],
    ['an unterminated string', '{"a":"b', /unterminated/],
    ['an unterminated escaped string', '{"a":"\\nb', /unterminated/],
    ['NaN', '{"a":NaN}', /invalid JSON/],
    ['a leading zero', '{"a":01}', /expected "," or "}"/],
    ['a byte order mark (a syntax error for Go)', '\ufeff{"a":1}', /invalid JSON/],
    ['empty input', '', /invalid JSON/],
  ])('refuses %s', (_n, text, reason) => {
    const r = readDockerJson(text);
    expect(r.ok).toBe(false);
    expect(r.ok ? '' : r.reason).toMatch(reason);
  });

  it.each([
    ['a truncated multi-byte sequence', Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xe2, 0x82, 0x22, 0x7d])],
    ['a lone continuation byte', Buffer.from('{"a":"\x80"}', 'latin1')],
    ['an encoded surrogate (CESU-8)', Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x7d])],
    ['an overlong encoding of "/"', Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc0, 0xaf, 0x22, 0x7d])],
  ])('refuses bytes that are not UTF-8: %s', (_n, bytes) => {
    const r = readDockerJson(bytes);
    expect(r).toEqual({ ok: false, reason: expect.stringMatching(/not valid UTF-8/) });
  });

  it('reads UTF-8 bytes the same as the text they encode', () => {
    const text = '{"Labels":{"caf\u00e9":"\u{1f600}"}}';
    expect(readDockerJson(Buffer.from(text, 'utf8'))).toEqual(readDockerJson(text));
  });

  it('agrees with JSON.parse on every document without keys Go would match to one field', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => {
        const text = JSON.stringify(v);
        const r = readDockerJson(text);
        if (r.ok) expect(r.value).toEqual(JSON.parse(text));
        else expect(r.reason).toMatch(/beyond 2\^53|appears twice/);
      }),
      { numRuns: 300 },
    );
  });

  it('agrees with JSON.parse on strings, except that unpaired surrogates become U+FFFD', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 30 }), (s) => {
        const r = readDockerJson(JSON.stringify(s));
        expect(r).toEqual({ ok: true, value: s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd') });
      }),
      { numRuns: 300 },
    );
  });
});

describe("Go's key folding", () => {
  it.each([
    ['Privileged', 'PRIVILEGED', true],
    ['Privileged', 'pRiViLeGeD', true],
    ['Binds', 'bind\u017f', true],
    ['CapAdd', 'capadd', true],
    ['Kernel', '\u212Aernel', true],
    ['Privileged', 'Priv\u0131leged', false],
    ['Privileged', 'Privileged ', false],
    ['Dns', 'dn\u017f', true],
    ['a_b', 'A_B', true],
    ['a_b', 'a-b', false],
  ])('%s matches %s: %s', (name, key, same) => {
    expect(goFoldEquals(key, goFoldKey(name))).toBe(same);
    expect(goFoldKey(key) === goFoldKey(name)).toBe(same);
  });
});
