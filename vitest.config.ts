import { defineConfig } from 'vitest/config'

// Workspace packages resolve to their TypeScript sources (packages/*/package.json, condition
// "certbound-source"), here and in every process a test starts (CLI, agent, examples), so no
// test ever runs a stale build.
const CONDITION = 'certbound-source'
if (!(process.env.NODE_OPTIONS ?? '').includes(`--conditions=${CONDITION}`)) {
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --conditions=${CONDITION}`.trim()
}

export default defineConfig({
  // Setting conditions replaces Vite's defaults for the server side, so they are repeated.
  ssr: { resolve: { conditions: [CONDITION, 'module', 'node', 'development|production'] } },
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Real servers, real SQLite files and openssl processes: two cores, two files at a time.
    maxWorkers: 2,
  },
})
