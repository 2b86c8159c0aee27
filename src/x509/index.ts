// Public facade of the x509 layer: parse* returns read-only views, build* takes typed params.
// pkijs/asn1js types never leak out of this folder.
export { buildCertificate, issuerView, parseCertificate } from './certificate.js'
export { buildCertificateFast } from './template.js'
export type { CertificateParams, CertificateView, Issuer, Profile } from './certificate.js'
export { buildCrl, REASON_CODES } from './crl.js'
export type { CrlParams, RevocationReason, RevokedEntry } from './crl.js'
export { PROFILES, resolveProfile, withUrls } from './profiles.js'
export type { CertificateProfile, ProfileName, SanKind } from './profiles.js'
export { parseCsr, parseCsrDer } from './csr.js'
export type { ParsedCsr } from './csr.js'
export type { SubjectName } from './name.js'
export { derToPem, pemBlocks, pemToDer } from './pem.js'
export { newSerial, serialFromHex, serialToHex } from './serial.js'
