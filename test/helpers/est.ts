import { execFile, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll } from 'vitest'
import { openssl, type CsrKey } from './openssl.js'

// EST (RFC 7030) the way a user without an EST client does it: curl for HTTP, openssl for
// every encoding (base64, PKCS#10, PKCS#7, ASN.1). Nothing of certbound's own code decodes.

const made: string[] = []
let calls = 0
afterAll(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** A temp directory removed when the test file ends. */
export function estDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'certbound-est-'))
  made.push(dir)
  return dir
}

const NEWKEY: Partial<Record<CsrKey, string[]>> = {
  'ec-p256': ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  'rsa-2048': ['-newkey', 'rsa:2048'],
  ed25519: ['-newkey', 'ed25519'],
}

function run(cmd: string, args: readonly string[], input?: string | Uint8Array) {
  const r = spawnSync(cmd, args, { input })
  if (r.error) throw r.error
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr.toString() }
}

/**
 * A key and an EST request body: `openssl req -outform DER | openssl base64` (64-column
 * lines, as RFC 7030 §4.2.1 allows). Written as `dir/<name>.key` and `dir/<name>.b64`.
 */
export function estCsr(
  dir: string,
  name: string,
  opts: { san?: string; key?: CsrKey } = {},
): { keyFile: string; csrFile: string; keyPem: string } {
  const keyFile = join(dir, `${name}.key`)
  const der = join(dir, `${name}.csr.der`)
  const args = ['req', '-new', '-nodes', '-subj', '/CN=est-client', '-keyout', keyFile]
  args.push(...(NEWKEY[opts.key ?? 'ec-p256'] ?? []), '-outform', 'DER', '-out', der)
  if (opts.san) args.push('-addext', `subjectAltName=${opts.san}`)
  const r = openssl(args)
  if (r.code !== 0) throw new Error(`openssl req: ${r.out}`)
  const csrFile = join(dir, `${name}.b64`)
  const b = openssl(['base64', '-in', der, '-out', csrFile])
  if (b.code !== 0) throw new Error(`openssl base64: ${b.out}`)
  return { keyFile, csrFile, keyPem: readFileSync(keyFile, 'utf8') }
}

export interface CurlResult {
  readonly status: number
  /** Every response's header block (several with --anyauth), as curl wrote them. */
  readonly headers: string
  readonly body: string
}

/**
 * curl against `url`, trusting `bundle`, with extra args; status from the last response.
 * Asynchronous: the server under test may run in this very process.
 */
export async function curl(
  dir: string,
  bundleFile: string,
  url: string,
  args: string[],
): Promise<CurlResult> {
  const headers = join(dir, `headers-${++calls}.txt`)
  const argv = ['-sS', '--cacert', bundleFile, '--dump-header', headers, '-w', '\n%{http_code}']
  const out = await new Promise<string>((resolve, reject) =>
    execFile('curl', [...argv, ...args, url], (err, stdout, stderr) =>
      err ? reject(new Error(`curl failed: ${stderr || err.message}`)) : resolve(stdout),
    ),
  )
  const cut = out.lastIndexOf('\n')
  return {
    status: Number(out.slice(cut + 1)),
    headers: readFileSync(headers, 'utf8'),
    body: out.slice(0, cut),
  }
}

/** `openssl base64 -d` of an EST body, then `openssl pkcs7 -print_certs`: the PEM certificates. */
export function pkcs7Certificates(body: string): string {
  const der = run('openssl', ['base64', '-d'], body)
  if (der.code !== 0 || der.stdout.length === 0) throw new Error(`not base64: ${der.stderr}`)
  const certs = run('openssl', ['pkcs7', '-inform', 'DER', '-print_certs'], der.stdout)
  if (certs.code !== 0) throw new Error(`openssl pkcs7: ${certs.stderr}`)
  return certs.stdout.toString()
}

/** The PEM certificate blocks of `text`, each normalised to end with one newline. */
export function pemCertificates(text: string): string[] {
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map(
    (m) => `${m[0]}\n`,
  )
}

/** `openssl base64 -d | openssl asn1parse -inform DER` of an EST body. */
export function asn1parse(body: string): string {
  const der = run('openssl', ['base64', '-d'], body)
  if (der.code !== 0 || der.stdout.length === 0) throw new Error(`not base64: ${der.stderr}`)
  const r = run('openssl', ['asn1parse', '-inform', 'DER'], der.stdout)
  if (r.code !== 0) throw new Error(`openssl asn1parse: ${r.stderr}`)
  return r.stdout.toString()
}

/** Writes `text` to `dir/name` and returns the path. */
export function writeTemp(dir: string, name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}
