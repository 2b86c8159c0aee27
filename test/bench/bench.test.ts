import { createPublicKey } from 'node:crypto'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { csrInfo, workloadKey } from '../../bench/lib/csr.js'
import { passes, ratio, renderTable, Report } from '../../bench/lib/report.js'
import { parseOptions } from '../../bench/main.js'
import { buildCsr } from '../../src/x509/csr-builder.js'
import { parseCsr } from '../../src/x509/csr.js'

/**
 * `npm run bench` is not run here (it measures; tests never time anything). This only checks
 * that its modules load, and the two pieces whose mistakes would skew every figure silently.
 */
describe('bench (smoke)', () => {
  it('every module under bench/ imports (the peer server and the entry point excepted)', async () => {
    const dirs = ['lib', 'sections', 'scale']
    const files = [
      'bench/main.ts',
      'bench/targets.ts',
      ...dirs.flatMap((d) =>
        readdirSync(join('bench', d))
          .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
          .map((f) => `bench/${d}/${f}`),
      ),
    ]
    expect(files.length).toBeGreaterThan(10)
    for (const f of files) await expect(import(`../../${f}`), f).resolves.toBeDefined()
  })

  it('the load generator CSRs are the ones src/x509/csr-builder.ts makes, and the CA accepts them', async () => {
    const cases: [string[], string[]][] = [
      [['spiffe://example.org/bench/a'], []],
      [[], ['w1.bench.example']],
      [[], []],
    ]
    for (const [uris, dnsNames] of cases) {
      const k = await workloadKey(uris, dnsNames)
      const publicKey = createPublicKey(k.privateKey)
      const ref = buildCsr({ privateKey: k.privateKey, publicKey, uris, dnsNames })
      const refDer = Buffer.from(ref.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64')
      const info = csrInfo(publicKey.export({ type: 'spki', format: 'der' }), uris, dnsNames)
      // The CertificationRequestInfo follows the outer SEQUENCE header, byte for byte.
      expect(refDer.indexOf(info)).toBeGreaterThan(0)
      expect(refDer.indexOf(info)).toBeLessThan(5)
      const parsed = parseCsr(k.csrPem) // verifies the signature too
      expect(parsed.uris).toEqual(uris)
      expect(parsed.dnsNames).toEqual(dnsNames)
    }
  })

  it('a missing figure is n/a, neither pass nor fail', () => {
    const r = new Report()
    r.add({
      section: 's',
      name: 'x',
      value: null,
      unit: '/s',
      ratio: { value: ratio(1, null), to: 'y' },
    })
    r.target({ name: 't', value: null, op: '>=', bound: 1, unit: 'x' })
    r.target({ name: 'u', value: 0.5, op: '>=', bound: 1, unit: 'x' })
    expect(passes(r.targets[0]!)).toBeNull()
    expect(passes(r.targets[1]!)).toBe(false)
    const table = renderTable(r)
    expect(table).toMatch(/n\/a\s+t\b/)
    expect(table).toMatch(/FAIL\s+u\b/)
    expect(parseOptions([]).seconds).toBe(3)
    expect(parseOptions(['--scale']).out).toBe('bench/results-scale.json')
  })
})
