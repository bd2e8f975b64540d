/**
 * canonicalise() reads a request target the way dockerd does, or refuses it. Rows marked
 * "dockerd:" state what dockerd 20.10.24 answered to the same target (pitfalls.md).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalise, parseQueryValues } from '../../src/docker/canonical.js';

interface Accepted {
  readonly name: string;
  readonly url: string;
  readonly path: string;
  readonly apiVersion?: string;
}

describe('paths dockerd routes are read as dockerd reads them', () => {
  it.each<Accepted>([
    { name: 'unversioned path (dockerd: works)', url: '/_ping', path: '/_ping' },
    { name: 'version prefix', url: '/v1.41/containers/json', path: '/containers/json', apiVersion: '1.41' },
    { name: 'old version prefix (dockerd 20.10 accepts down to 1.12)', url: '/v1.12/_ping', path: '/_ping', apiVersion: '1.12' },
    { name: 'too-new version is passed on: dockerd answers 400 itself', url: '/v9.99/_ping', path: '/_ping', apiVersion: '9.99' },
    { name: '%2F is decoded before routing (dockerd: kills container x)', url: '/containers/x%2Fkill', path: '/containers/x/kill' },
    { name: '%2F in a versioned path', url: '/v1.41/containers/x%2Fkill', path: '/containers/x/kill', apiVersion: '1.41' },
    { name: 'an encoded letter (dockerd: /%5Fping answers like /_ping)', url: '/%5Fping', path: '/_ping' },
    { name: 'an encoded version prefix is still a version prefix', url: '/%761.41/_ping', path: '/_ping', apiVersion: '1.41' },
    { name: 'image name with registry port and tag', url: '/v1.41/images/registry.example.com:5000/team/app:1.0/json', path: '/images/registry.example.com:5000/team/app:1.0/json', apiVersion: '1.41' },
    { name: '+ in a path stays + (dockerd: container "a+b")', url: '/containers/a+b/json', path: '/containers/a+b/json' },
    { name: '%25 decodes to a literal %', url: '/containers/a%25b/json', path: '/containers/a%b/json' },
    { name: 'an encoded ? is part of the path, not a query', url: '/containers/a%3Fb/json', path: '/containers/a?b/json' },
    { name: 'an encoded # is part of the path', url: '/containers/a%23b/json', path: '/containers/a#b/json' },
    { name: 'UTF-8 after decoding (dockerd: container "a\\u2028b")', url: '/containers/a%E2%80%A8b/json', path: '/containers/a\u2028b/json' },
    { name: 'a leading byte-order mark is kept, not swallowed', url: '/containers/%EF%BB%BFx/json', path: '/containers/\uFEFFx/json' },
    { name: 'upper case is kept (dockerd: 404, classified unknown)', url: '/Containers/json', path: '/Containers/json' },
    { name: 'capital V is not a version prefix (dockerd: 404)', url: '/V1.41/_ping', path: '/V1.41/_ping' },
    { name: '/version is not a version prefix', url: '/version', path: '/version' },
    { name: 'only one version prefix is stripped (dockerd: 404)', url: '/v1.41/v1.40/_ping', path: '/v1.40/_ping', apiVersion: '1.41' },
    { name: 'the root path (dockerd: 404, classified unknown)', url: '/', path: '/' },
    { name: 'a dot inside a segment is not a dot segment', url: '/containers/.hidden/json', path: '/containers/.hidden/json' },
    { name: 'three dots are a name', url: '/volumes/...', path: '/volumes/...' },
    { name: 'an empty query', url: '/containers/json?', path: '/containers/json' },
  ])('$name: $url', ({ url, path, apiVersion }) => {
    const result = canonicalise(url);
    expect(result).toMatchObject({ ok: true });
    if (!result.ok) return;
    expect(result.request.path).toBe(path);
    expect(result.request.apiVersion).toBe(apiVersion);
  });
});

interface Refused {
  readonly name: string;
  readonly url: string;
  readonly status: 400 | 404;
  readonly reason: RegExp;
}

describe('targets where our reading and dockerd\'s could differ are refused', () => {
  it.each<Refused>([
    { name: '// (dockerd: 301)', url: '//_ping', status: 400, reason: /empty segment/ },
    { name: '// inside the path (dockerd: 301)', url: '/containers//json', status: 400, reason: /empty segment/ },
    { name: 'encoded // (dockerd cleans the decoded path: 301)', url: '/containers/a%2F%2Fb/json', status: 400, reason: /empty segment/ },
    { name: '// after the version prefix', url: '/v1.41//_ping', status: 400, reason: /empty segment/ },
    { name: '/./ (dockerd: 301)', url: '/./_ping', status: 400, reason: /"\." or "\.\." segment/ },
    { name: '/../', url: '/containers/../_ping', status: 400, reason: /"\." or "\.\." segment/ },
    { name: 'encoded .. (dockerd: 301)', url: '/containers/%2e%2e/json', status: 400, reason: /"\." or "\.\." segment/ },
    { name: 'trailing .', url: '/containers/x/.', status: 400, reason: /"\." or "\.\." segment/ },
    { name: 'dot segment after the version prefix', url: '/v1.41/./_ping', status: 400, reason: /"\." or "\.\." segment/ },
    { name: 'trailing slash (dockerd: 404)', url: '/_ping/', status: 404, reason: /ends with "\/"/ },
    { name: 'trailing slash on a list route (dockerd: 404)', url: '/containers/json/', status: 404, reason: /ends with "\/"/ },
    { name: 'trailing slash dockerd would route: GET /networks/', url: '/networks/', status: 404, reason: /ends with "\/"/ },
    { name: 'trailing slash dockerd would route: DELETE /images/busybox/', url: '/images/busybox/', status: 404, reason: /ends with "\/"/ },
    { name: 'version prefix with a trailing slash (dockerd: 404)', url: '/v1.41/', status: 404, reason: /ends with "\/"/ },
    { name: 'version prefix alone (dockerd: 404)', url: '/v1.41', status: 404, reason: /no endpoint/ },
    { name: 'version without minor (dockerd: 400 too old)', url: '/v1/_ping', status: 400, reason: /not of the form/ },
    { name: 'three-part version (dockerd: accepted as 1.41)', url: '/v1.41.0/_ping', status: 400, reason: /not of the form/ },
    { name: 'leading zero (dockerd: accepted as 1.41)', url: '/v01.41/_ping', status: 400, reason: /not of the form/ },
    { name: 'double dot version (dockerd: 400)', url: '/v1..41/_ping', status: 400, reason: /not of the form/ },
    { name: 'dots only', url: '/v./_ping', status: 400, reason: /not of the form/ },
    { name: 'invalid percent-encoding (dockerd: 400)', url: '/containers/n%zz/json', status: 400, reason: /invalid percent-encoding/ },
    { name: 'truncated percent-encoding', url: '/containers/n%4', status: 400, reason: /invalid percent-encoding/ },
    { name: 'lone %', url: '/containers/%/json', status: 400, reason: /invalid percent-encoding/ },
    { name: 'decoded NUL', url: '/containers/a%00b/json', status: 400, reason: /control character/ },
    { name: 'decoded newline (Go\'s "." does not match it: dockerd 404s)', url: '/containers/a%0Ab/json', status: 400, reason: /control character/ },
    { name: 'decoded carriage return', url: '/containers/a%0Db/json', status: 400, reason: /control character/ },
    { name: 'decoded DEL', url: '/containers/a%7Fb/json', status: 400, reason: /control character/ },
    { name: 'decoded bytes that are not UTF-8 (dockerd: U+FFFD)', url: '/containers/a%FFb/json', status: 400, reason: /not valid UTF-8/ },
    { name: 'overlong UTF-8 encoding of "/"', url: '/containers/a%C0%AFb/kill', status: 400, reason: /not valid UTF-8/ },
    { name: 'raw non-ASCII character', url: '/containers/\u00e9/json', status: 400, reason: /non-ASCII/ },
    { name: 'raw space (Go: 400)', url: '/containers/a b/json', status: 400, reason: /space/ },
    { name: 'raw tab', url: '/containers/a\tb/json', status: 400, reason: /control/ },
    { name: 'raw NUL', url: '/_ping\u0000', status: 400, reason: /control/ },
    { name: 'fragment (Go keeps it in the path: dockerd 404)', url: '/containers/json#frag', status: 400, reason: /"#"/ },
    { name: 'fragment after a query', url: '/_ping?x=1#y', status: 400, reason: /"#"/ },
    { name: 'absolute-form target (Go routes its path)', url: 'http://host/_ping', status: 400, reason: /starting with "\/"/ },
    { name: 'asterisk-form target', url: '*', status: 400, reason: /starting with "\/"/ },
    { name: 'relative target (Go: 400)', url: '_ping', status: 400, reason: /starting with "\/"/ },
    { name: 'empty target', url: '', status: 400, reason: /starting with "\/"/ },
  ])('$name: $url -> $status', ({ url, status, reason }) => {
    const result = canonicalise(url);
    expect(result).toMatchObject({ ok: false, status });
    if (result.ok) return;
    expect(result.reason).toMatch(reason);
  });
});

interface QueryRow {
  readonly name: string;
  readonly rawQuery: string;
  readonly query: Readonly<Record<string, string>>;
}

describe('query parameters are read as dockerd\'s r.Form.Get reads them', () => {
  it.each<QueryRow>([
    { name: 'a repeated key keeps its FIRST value', rawQuery: 'signal=TERM&signal=KILL', query: { signal: 'TERM' } },
    { name: '+ is a space', rawQuery: 'name=my+app', query: { name: 'my app' } },
    { name: '%2B is a plus', rawQuery: 'name=my%2Bapp', query: { name: 'my+app' } },
    { name: '+ and escapes together', rawQuery: 'a=b+c%2Bd%20e', query: { a: 'b c+d e' } },
    { name: 'escaped JSON filters', rawQuery: 'filters=%7B%22label%22%3A%5B%22env%3Dprod%22%5D%7D', query: { filters: '{"label":["env=prod"]}' } },
    { name: 'UTF-8 values', rawQuery: 'label=%C3%A9t%C3%A9', query: { label: '\u00e9t\u00e9' } },
    { name: 'a key without = has an empty value', rawQuery: 'force', query: { force: '' } },
    { name: 'only the first = splits', rawQuery: 'a=1=2', query: { a: '1=2' } },
    { name: 'an empty key is a key', rawQuery: '=x', query: { '': 'x' } },
    { name: 'empty pairs are skipped', rawQuery: '&&a=1&&', query: { a: '1' } },
    { name: 'a ? inside the query is data', rawQuery: 'a=b?c', query: { a: 'b?c' } },
    { name: 'keys are case-sensitive', rawQuery: 'Signal=KILL&signal=TERM', query: { Signal: 'KILL', signal: 'TERM' } },
    { name: 'an encoded key', rawQuery: 'sig%6Eal=TERM', query: { signal: 'TERM' } },
  ])('$name: ?$rawQuery', ({ rawQuery, query }) => {
    const result = canonicalise(`/containers/x/kill?${rawQuery}`);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect({ ...result.request.query }).toEqual(query);
    expect(result.request.rawQuery).toBe(rawQuery);
  });

  it('records the keys given more than once (a decoded key counts as its spelling)', () => {
    const twice = canonicalise('/images/get?names=a&names%3Db&sig%6Eal=1&signal=2&names=c');
    expect(twice.ok && [...(twice.request.repeated ?? [])].sort()).toEqual(['names', 'signal']);
    const once = canonicalise('/images/get?names=a&all=1');
    expect(once.ok && once.request.repeated).toBeUndefined();
  });

  it('keeps the raw query byte for byte for forwarding', () => {
    const raw = 'filters=%7B%22a%22%3A1%7D&t=x+y&t=z';
    const result = canonicalise(`/v1.41/containers/json?${raw}`);
    expect(result.ok && result.request.rawQuery).toBe(raw);
  });

  it('a client-chosen key never reads as an inherited member', () => {
    const result = canonicalise('/containers/json?__proto__=x&a=1');
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const { query } = result.request;
    expect(query['__proto__']).toBe('x');
    expect(Object.keys(query)).toEqual(['__proto__', 'a']);
    expect(query['constructor']).toBeUndefined();
    expect(query['toString']).toBeUndefined();
    expect('hasOwnProperty' in query).toBe(false);
  });

  it.each([
    { name: 'semicolon separator (dockerd: 400 "invalid semicolon separator")', rawQuery: 'all=1;x=2', reason: /";"/ },
    { name: 'semicolon in a value', rawQuery: 'a=b;c', reason: /";"/ },
    { name: 'invalid escape (dockerd: 400 "invalid URL escape")', rawQuery: 'filters=%zz', reason: /invalid percent-encoding/ },
    { name: 'invalid escape in a key', rawQuery: '%zz=1', reason: /invalid percent-encoding/ },
    { name: 'truncated escape', rawQuery: 'a=%4', reason: /invalid percent-encoding/ },
    { name: 'bytes that are not UTF-8', rawQuery: 'a=%FF', reason: /not valid UTF-8/ },
    { name: 'more parameters than Go accepts', rawQuery: Array.from({ length: 10_001 }, (_, i) => `k${i}=v`).join('&'), reason: /more than 10000/ },
  ])('refuses $name', ({ rawQuery, reason }) => {
    const result = canonicalise(`/containers/json?${rawQuery}`);
    expect(result).toMatchObject({ ok: false, status: 400 });
    if (result.ok) return;
    expect(result.reason).toMatch(reason);
  });

  it('accepts exactly as many parameters as Go does', () => {
    const rawQuery = Array.from({ length: 10_000 }, (_, i) => `k${i}=v`).join('&');
    expect(canonicalise(`/containers/json?${rawQuery}`).ok).toBe(true);
  });
});

describe('parseQueryValues keeps every value, for parameters dockerd reads as lists', () => {
  it.each([
    { name: 'repeated names of GET /images/get', rawQuery: 'names=busybox&names=alpine%3A3', values: { names: ['busybox', 'alpine:3'] } },
    { name: 'repeated tags of POST /build', rawQuery: 't=a&x=1&t=b', values: { t: ['a', 'b'], x: ['1'] } },
    { name: 'empty query', rawQuery: '', values: {} },
  ])('$name: ?$rawQuery', ({ rawQuery, values }) => {
    const result = parseQueryValues(rawQuery);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(Object.fromEntries(result.values)).toEqual(values);
  });

  it('refuses what canonicalise refuses', () => {
    expect(parseQueryValues('a=1;b=2')).toMatchObject({ ok: false });
    expect(parseQueryValues('a=%G0')).toMatchObject({ ok: false });
  });
});

describe('canonicalise is total and its accepted paths are clean', () => {
  const targetChars = fc.constantFrom(
    ...'/%.?#&=;+:@v0123456789abcdefAF _-\u00e9\u0000\n'.split(''),
    '%2F', '%2f', '%2E', '%00', '%0A', '%C3%A9', '%FF', '/v1.41', '/containers', '/..', '//',
  );
  const targets = fc.array(targetChars, { maxLength: 24 }).map((parts) => parts.join(''));

  it('never throws, and an accepted path has no empty, dot or trailing segment nor control', () => {
    fc.assert(
      fc.property(fc.oneof(targets, targets.map((t) => `/${t}`), fc.string()), (url) => {
        const result = canonicalise(url);
        if (!result.ok) {
          expect([400, 404]).toContain(result.status);
          return;
        }
        const { path } = result.request;
        expect(path.startsWith('/')).toBe(true);
        expect(path).not.toMatch(/\/\/|(^|\/)\.\.?(\/|$)|[\u0000-\u001f\u007f]/);
        if (path !== '/') expect(path.endsWith('/')).toBe(false);
        expect(result.request.rawQuery).toBe(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '');
      }),
      { numRuns: 3000 },
    );
  });
});
