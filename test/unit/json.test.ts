import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { readDockerJson } from '../../src/docker/json.js';

describe('reading JSON bodies as dockerd does', () => {
  it.each([
    ['a create body', '{"Image":"busybox:local","HostConfig":{"Privileged":false,"Binds":["/srv:/srv"]}}', { Image: 'busybox:local', HostConfig: { Privileged: false, Binds: ['/srv:/srv'] } }],
    ['escapes', '{"Cmd":["a\\u0041\\n\\"b"]}', { Cmd: ['aA\n"b'] }],
    ['surrounding whitespace', ' \n{"a":1}\r\n ', { a: 1 }],
    ['null', '{"HostConfig":null}', { HostConfig: null }],
    ['numbers', '{"Memory":1073741824,"CpuShares":-2,"f":1.5e3}', { Memory: 1073741824, CpuShares: -2, f: 1500 }],
    ['the largest exact integer', '{"n":9007199254740991}', { n: 9007199254740991 }],
  ])('reads %s', (_n, text, value) => {
    expect(readDockerJson(text)).toEqual({ ok: true, value });
  });

  it.each([
    // Go merges repeated objects: the first HostConfig's Privileged survives the second.
    ['a repeated key', '{"HostConfig":{"Privileged":true},"HostConfig":{}}', /"HostConfig" appears twice/],
    ['two spellings of one key', '{"HostConfig":{"Privileged":false,"privileged":true}}', /"privileged" appears twice/],
    ['a Kelvin-sign spelling (Go folds U+212A to k)', '{"\u212Aey":1,"key":2}', /appears twice/],
    ['a long-s spelling (Go folds U+017F to s)', '{"Binds":1,"Bind\u017F":2}', /appears twice/],
    ['trailing data Go would ignore', '{"Image":"a"} {"Image":"b"}', /data after the JSON value/],
    ['an integer beyond 2^53', '{"Memory":9007199254740993}', /beyond 2\^53/],
    ['a number out of range', '{"n":1e400}', /out of range/],
    ['a raw control character', '{"a":"x\u0001"}', /control character/],
    ['a bad escape', '{"a":"\\x"}', /invalid escape/],
    ['a trailing comma', '{"a":1,}', /expected a key/],
    ['single quotes', "{'a':1}", /expected a key/],
    ['an unterminated string', '{"a":"b', /unterminated/],
    ['NaN', '{"a":NaN}', /invalid JSON/],
    ['empty input', '', /invalid JSON/],
  ])('refuses %s', (_n, text, reason) => {
    const r = readDockerJson(text);
    expect(r.ok).toBe(false);
    expect(r.ok ? '' : r.reason).toMatch(reason);
  });

  it('agrees with JSON.parse on every document without duplicate keys', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => {
        const text = JSON.stringify(v);
        const hasFoldedDup = /"([^"]*)":[^]*"\1":/i.test(text);
        const r = readDockerJson(text);
        if (r.ok) expect(r.value).toEqual(JSON.parse(text));
        else expect(hasFoldedDup || /beyond 2\^53|appears twice/.test(r.reason)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});
