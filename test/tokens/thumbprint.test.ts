import { X509Certificate } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { x5tS256 } from '../../src/crypto/thumbprint.js'

// RFC 8705 Appendix A, Figure 6: the example client certificate (self-signed, EC P-256).
const RFC8705_CERT = `-----BEGIN CERTIFICATE-----
MIIBBjCBrAIBAjAKBggqhkjOPQQDAjAPMQ0wCwYDVQQDDARtdGxzMB4XDTE4MTAx
ODEyMzcwOVoXDTIyMDUwMjEyMzcwOVowDzENMAsGA1UEAwwEbXRsczBZMBMGByqG
SM49AgEGCCqGSM49AwEHA0IABNcnyxwqV6hY8QnhxxzFQ03C7HKW9OylMbnQZjjJ
/Au08/coZwxS7LfA4vOLS9WuneIXhbGGWvsDSb0tH6IxLm8wCgYIKoZIzj0EAwID
SQAwRgIhAP0RC1E+vwJD/D1AGHGzuri+hlV/PpQEKTWUVeORWz83AiEA5x2eXZOV
bUlJSGQgjwD5vaUaKlLR50Q2DmFfQj1L+SY=
-----END CERTIFICATE-----`

describe('x5tS256 (RFC 8705 §3.1)', () => {
  it('reproduces the RFC 8705 Appendix A example thumbprint', () => {
    const der = new X509Certificate(RFC8705_CERT).raw
    expect(x5tS256(der)).toBe('A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0')
  })

  it('is unpadded base64url of SHA-256 (43 characters, no "=", "+" or "/")', () => {
    const t = x5tS256(new Uint8Array([0xfb, 0xff, 0xfe]))
    expect(t).toHaveLength(43)
    expect(t).toMatch(/^[A-Za-z0-9_-]{43}$/)
    // SHA-256 of the empty string, base64url without padding.
    expect(x5tS256(new Uint8Array())).toBe('47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU')
  })
})
