// Verdicts of the two CSR readers, compared by the fast-reader tests.
import { CAError } from '../../../src/errors.js'
import type { ParsedCsr } from '../../../src/x509/csr.js'

export const view = (c: ParsedCsr) => ({
  der: Buffer.from(c.der).toString('hex'),
  spki: Buffer.from(c.spkiDer).toString('hex'),
  key: c.publicKey.export({ type: 'spki', format: 'der' }).toString('hex'),
  keyType: c.keyType,
  uris: c.uris,
  dnsNames: c.dnsNames,
  ipAddresses: c.ipAddresses,
  emails: c.emails,
  requestsCA: c.requestsCA,
})

export type Verdict =
  { ok: ReturnType<typeof view> } | { code: string; message: string } | 'fallback'

export function verdict(read: () => ParsedCsr | undefined): Verdict {
  try {
    const r = read()
    return r === undefined ? 'fallback' : { ok: view(r) }
  } catch (e) {
    if (!(e instanceof CAError)) throw new Error(`non-CAError: ${String(e)}`)
    return { code: e.code, message: e.message }
  }
}

export const STRICTER = /^CSR is not minimal DER: /

export const isRefusal = (v: Verdict): v is { code: string; message: string } =>
  typeof v === 'object' && 'code' in v
