/** Object identifiers used by the x509 layer, grouped by purpose. */

// Signature algorithms. RFC 5758 §3.2 (ECDSA), RFC 4055 §5 (RSA), RFC 8410 §3 (Ed25519).
export const SIG = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  ecdsaWithSha512: '1.2.840.10045.4.3.4',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  sha384WithRsa: '1.2.840.113549.1.1.12',
  sha512WithRsa: '1.2.840.113549.1.1.13',
  ed25519: '1.3.101.112',
} as const

// SubjectPublicKeyInfo algorithms. RFC 5480 §2.1.1, RFC 3279 §2.3.1, RFC 8410 §3.
export const KEY_ALG = {
  ecPublicKey: '1.2.840.10045.2.1',
  rsaEncryption: '1.2.840.113549.1.1.1',
  ed25519: '1.3.101.112',
} as const

// Certificate and CRL extensions, RFC 5280 §4.2.1 and §5.2-5.3.
export const EXT = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  cRLNumber: '2.5.29.20',
  reasonCode: '2.5.29.21',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  cRLDistributionPoints: '2.5.29.31',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  // RFC 6960 §4.2.2.2.1
  ocspNoCheck: '1.3.6.1.5.5.7.48.1.5',
} as const

// AccessDescription accessMethods, RFC 5280 §4.2.2.1.
export const ACCESS_METHOD = {
  ocsp: '1.3.6.1.5.5.7.48.1',
  caIssuers: '1.3.6.1.5.5.7.48.2',
} as const

// Extended key usages, RFC 5280 §4.2.1.12 (OCSPSigning: RFC 6960 §4.2.2.2). certboundServer (a
// UUID OID, ITU-T X.667) marks the CA's own TLS server certificate and nothing else: how clients
// tell the CA from a workload.
export const EKU = {
  ocspSigning: '1.3.6.1.5.5.7.3.9',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  certboundServer: '2.25.10365697400001155744715433452568906552',
} as const

// Name attributes, RFC 5280 Appendix A / X.520.
export const ATTR = {
  commonName: '2.5.4.3',
  organizationName: '2.5.4.10',
} as const

// PKCS#9 extensionRequest attribute carried in a CSR, RFC 2985 §5.4.2.
export const EXTENSION_REQUEST = '1.2.840.113549.1.9.14'
