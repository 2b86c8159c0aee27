import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stopCluster, type ClusterInfo } from './postgres-cluster.js'

/**
 * vitest globalSetup: one PostgreSQL cluster per test run, shared by every test file. It is
 * only made here a place for; the first test file that asks for PostgreSQL starts it (see
 * test/helpers/postgres.ts), so a run without such files pays nothing. The environment
 * variable reaches the worker processes, which vitest forks after this.
 */
export const CLUSTER_DIR_ENV = 'CERTBOUND_TEST_PG_DIR'

export default function setup(): () => void {
  const base = mkdtempSync(join(tmpdir(), 'certbound-pg-'))
  process.env[CLUSTER_DIR_ENV] = base
  return () => {
    const info = join(base, 'cluster.json')
    if (existsSync(info)) stopCluster(JSON.parse(readFileSync(info, 'utf8')) as ClusterInfo)
    rmSync(base, { recursive: true, force: true })
  }
}
