import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { NODE_FLAGS } from '../../src/cli/node-flags.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

// The systemd unit and the container image are checked by test/e2e/deploy.test.ts.
describe('the gateway starts with its Node flags', () => {
  it('npm start', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toBe(`npm run build && node ${NODE_FLAGS.join(' ')} dist/src/cli/main.js serve`);
  });

  it('the dockward bin (its shebang, through env -S)', () => {
    const first = readFileSync(path.join(ROOT, 'src', 'cli', 'main.ts'), 'utf8').split('\n', 1)[0];
    expect(first).toBe(`#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
  });
});
