import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One throwaway PostgreSQL cluster per run, started by the first test file that needs it.
    globalSetup: ['test/helpers/postgres-setup.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Real servers, real SQLite files and openssl processes: two cores, two files at a time.
    maxWorkers: 2,
  },
})
