import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'clients/typescript/test/**/*.test.ts'],
    pool: 'forks',
    // Bounds for a stuck test, not sync points (tests wait on events or a TestClock): wide, so
    // the suite passes on a machine whose cores are all busy (npm run test:stress).
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // Fail on leftover .only/.skip instead of silently running less.
    allowOnly: false,
  },
});
