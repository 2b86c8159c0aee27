// Indicative in-process issuance rate (CSR parse + verify + build + sign), one core, for the
// path the server uses (fast CSR reader + template encoder) and, as the reference column, the
// pkijs path it replaced. Not a test and never asserted on: the real figures come from
// `npm run bench`. Run:  node --import tsx test/unit/x509/measure-issuance.ts [key-type] [s]
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { issueLeaf } from '../../../src/ca/issue.js'
import { caMaterialFromIssuers, type CaMaterial } from '../../../src/ca/material.js'
import { loadConfig } from '../../../src/config/load.js'
import { generateKeyPair } from '../../../src/crypto/keys.js'
import type { KeyType } from '../../../src/crypto/keys.js'
import { spkiDer } from '../../../src/crypto/keys.js'
import { sha256Hex, x5tS256 } from '../../../src/crypto/thumbprint.js'
import { buildCertificate } from '../../../src/x509/certificate.js'
import { buildCsr } from '../../../src/x509/csr-builder.js'
import { parseCsr, parseCsrDerWithPkijs } from '../../../src/x509/csr.js'
import { pemToDer } from '../../../src/x509/pem.js'
import { newSerial, serialToHex } from '../../../src/x509/serial.js'
import { makeChain } from '../../helpers/x509.js'

const keyType = (process.argv[2] ?? 'ec-p256') as KeyType
const seconds = Number(process.argv[3] ?? 3)

const dir = mkdtempSync(join(tmpdir(), 'certbound-measure-'))
writeFileSync(join(dir, 'ca.yaml'), `trust_domain: example.org\ndata_dir: ${dir}\n`)
const config = loadConfig(join(dir, 'ca.yaml'))
const chain = await makeChain(keyType)
const ca: CaMaterial = caMaterialFromIssuers(chain.root, chain.intermediate)
const csrs: string[] = []
for (let i = 0; i < 32; i++) {
  const keys = await generateKeyPair(keyType)
  csrs.push(buildCsr({ ...keys, uris: [`spiffe://example.org/w/${i}`], dnsNames: ['a.example'] }))
}

function issueOne(pem: string): number {
  const csr = parseCsr(pem)
  const issued = issueLeaf(ca, config, {
    kind: 'workload',
    publicKey: csr.publicKey,
    spiffeId: csr.uris[0]!,
    dnsNames: csr.dnsNames,
    ttlMs: 3600_000,
    entryId: null,
    renewedFrom: null,
    now: new Date(),
  })
  return issued.der.length
}

/** The path before the template encoder: pkijs CSR parse, pkijs build, two SPKI exports. */
function issueOnePkijs(pem: string): number {
  const csr = parseCsrDerWithPkijs(pemToDer(pem, 'CERTIFICATE REQUEST'))
  const serial = newSerial()
  const now = Math.floor(Date.now() / 1000) * 1000
  const der = buildCertificate({
    profile: 'leaf',
    subject: { organization: config.certificates.organization },
    publicKey: csr.publicKey,
    serial,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3600_000),
    uris: [csr.uris[0]!],
    dnsNames: csr.dnsNames,
    issuer: ca.issuer,
  })
  return serialToHex(serial).length + x5tS256(der).length + sha256Hex(spkiDer(csr.publicKey)).length
}

function measure(name: string, issue: (pem: string) => number): void {
  for (let i = 0; i < 200; i++) issue(csrs[i % csrs.length]!) // warm-up
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  let n = 0
  while (performance.now() - t0 < seconds * 1000) issue(csrs[n++ % csrs.length]!)
  const cpu = process.cpuUsage(cpu0)
  const cpuUs = (cpu.user + cpu.system) / n
  console.log(
    `${keyType} ${name}: ${n} issuances, ${cpuUs.toFixed(0)} µs CPU each` +
      ` (${(1e6 / cpuUs).toFixed(0)}/s per core)`,
  )
}

measure('pkijs path   ', issueOnePkijs)
measure('template path', issueOne)
