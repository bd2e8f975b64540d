import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // e2e files share one dockerd; running them in parallel on 2 cores only adds noise.
    fileParallelism: true,
    pool: 'forks',
  },
});
