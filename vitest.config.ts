import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Real servers, real SQLite files and openssl processes: two cores, two files at a time.
    maxWorkers: 2,
  },
})
