import { defineConfig } from 'vitest/config'

// Workspace packages resolve to their TypeScript sources (packages/*/package.json, condition
// "certbound-source"), here and in every process a test starts (CLI, agent, examples), so no
// test ever runs a stale build.
const CONDITION = 'certbound-source'
if (!(process.env.NODE_OPTIONS ?? '').includes(`--conditions=${CONDITION}`)) {
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --conditions=${CONDITION}`.trim()
}

/** The HTTP-level suites that touch storage: they run on both backends. */
const POSTGRES_SUITES = [
  'test/ca/{bad-input,concurrency,enroll,entries,mtls,restart,revoke-crl,ocsp,rotation,lint}.test.ts',
  'test/tokens/*.test.ts',
  'test/http/*.test.ts',
  'test/est/*.test.ts',
  'test/lineage/*.test.ts',
  'test/oidc/*.test.ts',
  'test/ops/{rate-limit,metrics,health,doctor}.test.ts',
  'test/audit/{log,cli}.test.ts',
  'test/hostile/*.test.ts',
  'test/security/{routes,token-binding,secrets-scan}.test.ts',
]

export default defineConfig({
  // Setting conditions replaces Vite's defaults for the server side, so they are repeated.
  ssr: { resolve: { conditions: [CONDITION, 'module', 'node', 'development|production'] } },
  test: {
    // Every suite runs on SQLite; the suites that reach the database through the HTTP API run
    // again on PostgreSQL (a fresh database of the run's throwaway cluster per server).
    projects: [
      { extends: true, test: { name: 'sqlite', include: ['test/**/*.test.ts'] } },
      {
        extends: true,
        test: {
          name: 'postgres',
          include: POSTGRES_SUITES,
          env: { CERTBOUND_TEST_BACKEND: 'postgres' },
        },
      },
    ],
    // One throwaway PostgreSQL cluster per run, started by the first test file that needs it.
    globalSetup: ['test/helpers/postgres-setup.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Real servers, real SQLite files and openssl processes: two cores, two files at a time.
    maxWorkers: 2,
  },
})
