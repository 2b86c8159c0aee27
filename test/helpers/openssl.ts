import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Runs openssl (the independent checker); returns the exit code and stdout+stderr. */
export function openssl(
  args: readonly string[],
  input?: string | Uint8Array,
): { code: number; out: string } {
  const r = spawnSync('openssl', args, { input, encoding: 'utf8' })
  if (r.error) throw r.error
  return { code: r.status ?? 1, out: `${r.stdout}${r.stderr}` }
}

export type CsrKey = 'ec-p256' | 'ec-p384' | 'ed25519' | 'rsa-2048' | 'rsa-1024' | 'secp256k1'

const NEWKEY: Record<CsrKey, string[]> = {
  'ec-p256': ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  'ec-p384': ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'],
  ed25519: ['-newkey', 'ed25519'],
  'rsa-2048': ['-newkey', 'rsa:2048'],
  'rsa-1024': ['-newkey', 'rsa:1024'],
  secp256k1: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:secp256k1'],
}

/**
 * Makes a key and a CSR with `openssl req`, the way users do. `san` is the
 * subjectAltName value (e.g. `URI:spiffe://example.org/w,DNS:a.example`).
 */
export function makeCsr(
  opts: { key?: CsrKey; san?: string; extra?: string[]; keyPem?: string } = {},
): { csrPem: string; keyPem: string } {
  const dir = mkdtempSync(join(tmpdir(), 'certbound-csr-'))
  const keyFile = join(dir, 'key.pem')
  const args = [
    'req',
    '-new',
    '-nodes',
    '-subj',
    '/CN=ignored-by-the-ca',
    '-out',
    join(dir, 'csr.pem'),
  ]
  if (opts.keyPem) {
    writeFileSync(keyFile, opts.keyPem, { mode: 0o600 })
    args.push('-key', keyFile)
  } else {
    args.push(...NEWKEY[opts.key ?? 'ec-p256'], '-keyout', keyFile)
  }
  if (opts.san) args.push('-addext', `subjectAltName=${opts.san}`)
  args.push(...(opts.extra ?? []))
  try {
    const r = openssl(args)
    if (r.code !== 0) throw new Error(`openssl req failed: ${r.out}`)
    return {
      csrPem: readFileSync(join(dir, 'csr.pem'), 'utf8'),
      keyPem: readFileSync(keyFile, 'utf8'),
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** `openssl verify -x509_strict` of a leaf against root + intermediate; returns the output. */
export function verifyLeaf(
  leafPem: string,
  bundlePem: string,
  intermediatePem: string,
): { code: number; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'certbound-verify-'))
  writeFileSync(join(dir, 'root.pem'), bundlePem)
  writeFileSync(join(dir, 'inter.pem'), intermediatePem)
  writeFileSync(join(dir, 'leaf.pem'), leafPem)
  try {
    return openssl([
      'verify',
      '-x509_strict',
      '-CAfile',
      join(dir, 'root.pem'),
      '-untrusted',
      join(dir, 'inter.pem'),
      join(dir, 'leaf.pem'),
    ])
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
