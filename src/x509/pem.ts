import { CAError } from '../errors.js'

// RFC 7468 §2 textual encoding. We parse strictly (one label, standard base64, nothing but
// whitespace inside the block) but tolerate CRLF and text around blocks, as `openssl` does.
const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([^-]*)-----END ([A-Z0-9 ]+)-----/g
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

// RFC 7468 §7: legacy label some tools still emit for PKCS#10.
const ALIASES: Readonly<Record<string, readonly string[]>> = {
  'CERTIFICATE REQUEST': ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST'],
}

function accepted(label: string): readonly string[] {
  return ALIASES[label] ?? [label]
}

function decodeBody(body: string, label: string): Uint8Array {
  const b64 = body.replace(/[\r\n\t ]/g, '')
  if (b64.length === 0 || b64.length % 4 !== 0 || !BASE64.test(b64)) {
    throw new CAError('ERR_PEM_INVALID', `PEM ${label} block has invalid base64`)
  }
  return new Uint8Array(Buffer.from(b64, 'base64'))
}

interface RawBlock {
  readonly label: string
  readonly body: string
}

function scan(text: string): RawBlock[] {
  const out: RawBlock[] = []
  for (const m of text.matchAll(BLOCK)) {
    const [, begin, body, end] = m
    if (begin !== end) {
      throw new CAError('ERR_PEM_INVALID', `PEM block BEGIN ${begin} does not match END ${end}`)
    }
    out.push({ label: begin!, body: body! })
  }
  return out
}

/** All blocks with `label` (or its alias), decoded, in order. Other labels are skipped. */
export function pemBlocks(text: string, label: string): Uint8Array[] {
  if (typeof text !== 'string') throw new CAError('ERR_PEM_INVALID', 'PEM input must be text')
  const labels = accepted(label)
  return scan(text)
    .filter((b) => labels.includes(b.label))
    .map((b) => decodeBody(b.body, label))
}

/**
 * Exactly one PEM block of `label` → DER. Anything else (no PEM, another label, several
 * blocks, bad base64) is `ERR_PEM_INVALID`.
 */
export function pemToDer(pem: string, label: string): Uint8Array {
  if (typeof pem !== 'string' || !pem.includes('-----BEGIN ')) {
    throw new CAError('ERR_PEM_INVALID', `expected a PEM ${label}, got no PEM block`)
  }
  const blocks = scan(pem)
  const labels = accepted(label)
  const matching = blocks.filter((b) => labels.includes(b.label))
  if (matching.length === 0) {
    const found = blocks.map((b) => b.label).join(', ') || 'a malformed block'
    throw new CAError('ERR_PEM_INVALID', `expected a PEM ${label}, found ${found}`)
  }
  if (matching.length > 1) {
    throw new CAError('ERR_PEM_INVALID', `expected one PEM ${label}, found ${matching.length}`)
  }
  return decodeBody(matching[0]!.body, label)
}

/** DER → PEM with 64-column lines and a trailing newline (RFC 7468 §2). */
export function derToPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64')
  const lines = b64.match(/.{1,64}/g) ?? []
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`
}
