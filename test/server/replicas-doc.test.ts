import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase, testPostgres, type TestDatabase } from '../helpers/postgres.js'
import { freePort } from '../helpers/process-server.js'

const ROOT = join(import.meta.dirname, '../..')
const postgres = await testPostgres()

/**
 * docs/replicas.md runs as written: two replicas on one PostgreSQL database (the run's throwaway
 * cluster stands for "your PostgreSQL server"); only the database URL and the ports differ.
 */
describe.skipIf(!postgres.cluster)(`docs/replicas.md runs as written${postgres.skipped}`, () => {
  let db: TestDatabase
  let dir: string
  beforeAll(async () => {
    db = await createTestDatabase(postgres.cluster!)
    dir = mkdtempSync(join(tmpdir(), 'certbound-replicas-doc-'))
  })
  afterAll(async () => {
    await db.drop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('two replicas started together share one CA; a revocation on A is in B’s CRL', async () => {
    const doc = readFileSync(join(ROOT, 'docs/replicas.md'), 'utf8')
    const blocks = [...doc.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!)
    expect(blocks).toHaveLength(1)
    const [pa, pb] = [await freePort(), await freePort()]
    const block = blocks[0]!
      .replace(/^export CERTBOUND_DATABASE=.*$/m, `export CERTBOUND_DATABASE='${db.url}'`)
      .replaceAll('9443', String(pa))
      .replaceAll('9444', String(pb))
    expect(block).toContain(db.url)
    const loader = import.meta.resolve('tsx')
    const script = [
      'set -euo pipefail',
      // `npm run -s certbound -- …` from the checkout; like npm, it passes SIGTERM on to node.
      `npm() { if [ "$1 $2 $3 $4" = "run -s certbound --" ]; then shift 4; node --import ${loader} ${ROOT}/src/cli/index.ts "$@" & local p=$! rc=0; trap "kill -TERM $p 2>/dev/null" TERM; wait $p || rc=$?; trap - TERM; return $rc; else command npm "$@"; fi; }`,
      block,
    ].join('\n')
    // Its own process group: whatever the script leaves running is stopped with it.
    const sh = spawn('bash', ['-c', script], { cwd: dir, detached: true })
    let out = ''
    sh.stdout.on('data', (d: Buffer) => (out += d.toString()))
    sh.stderr.on('data', (d: Buffer) => (out += d.toString()))
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => process.kill(-sh.pid!, 'SIGKILL'), 120_000)
      sh.on('close', (c) => {
        clearTimeout(timer)
        resolve(c)
      })
    })
    try {
      process.kill(-sh.pid!, 'SIGTERM')
    } catch {
      // the group has ended
    }
    const logs = ['a.log', 'b.log']
      .map((f) => {
        try {
          return readFileSync(join(dir, 'replicas', f), 'utf8')
        } catch {
          return ''
        }
      })
      .join('\n')
    expect(code, `${out}\n--- replicas ---\n${logs}`).toBe(0)
    const serial = JSON.parse(readFileSync(join(dir, 'replicas/issued.json'), 'utf8')).serial
    expect(out.toLowerCase()).toContain(`serial number: ${serial}`)
    // Both replicas served, each from its own port, on one CA.
    expect([...logs.matchAll(/certbound serving/g)]).toHaveLength(2)
  }, 180_000)
})
