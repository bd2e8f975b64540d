import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { readDockerJson, setTopLevelMember } from '../../src/docker/json.js';

describe('setting one top-level member without touching the other bytes', () => {
  it.each([
    ['appends to an object without the key', '{"Image":"a","Memory":1.5e7}', '{"Image":"a","Memory":1.5e7,"Labels":{"o":"x"}}'],
    ['replaces the value in the client spelling', '{"labels":{"a":"b"}, "Memory": 1.5e7 }', '{"labels":{"o":"x"}, "Memory": 1.5e7 }'],
    ['replaces null', '{"Labels":null,"Cmd":["a]}"]}', '{"Labels":{"o":"x"},"Cmd":["a]}"]}'],
    ['fills an empty object', ' { } ', ' { "Labels":{"o":"x"}} '],
    ['keeps escapes and nesting', '{"A":{"B":[1,{"c":"\\"}"}]},"LABELS":{},"Z":true}', '{"A":{"B":[1,{"c":"\\"}"}]},"LABELS":{"o":"x"},"Z":true}'],
    ['a folded spelling (Kelvin sign)', '{"\u212Aeep":1,"Labelſ":{}}', '{"\u212Aeep":1,"Labelſ":{"o":"x"}}'],
  ])('%s', (_n, text, expected) => {
    expect(setTopLevelMember(text, 'Labels', '{"o":"x"}')).toBe(expected);
  });

  it('leaves every other member of any object equal, and sets exactly Labels', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string().filter((k) => k.toLowerCase() !== 'labels'), fc.jsonValue({ maxDepth: 3 })), fc.boolean(), (obj, withLabels) => {
        const doc = withLabels ? { ...obj, Labels: { old: '1' } } : obj;
        const text = JSON.stringify(doc, null, 1);
        const r = readDockerJson(text);
        fc.pre(r.ok);
        const out = readDockerJson(setTopLevelMember(text, 'Labels', '{"o":"x"}'));
        expect(out).toEqual({ ok: true, value: { ...(r as { value: object }).value, Labels: { o: 'x' } } });
      }),
      { numRuns: 300 },
    );
  });
});
