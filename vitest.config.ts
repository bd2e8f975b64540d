import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    reporters: ['default', './test/summary-reporter.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Files run in parallel (unit files are cheap); e2e files share one dockerd and isolate
    // themselves by labels and unique names, so they may overlap.
    fileParallelism: true,
    pool: 'forks',
  },
});
