import type { KeyObject } from 'node:crypto'

import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'

import { publicKeyFromSpki, requireKeyType, spkiDer as spkiOf } from '../crypto/keys.js'
import { sha256Hex, x5tS256 } from '../crypto/thumbprint.js'
import { CAError } from '../errors.js'
import { bytesEqual, decodeDer, encode, toBytes, x509Time } from './der.js'
import * as ext from './extensions.js'
import { buildName, isEmptyName, nameFromDer, nameToDer } from './name.js'
import type { SubjectName } from './name.js'
import { EXT } from './oids.js'
import { checkProfileNames, keyUsagesFor, resolveProfile } from './profiles.js'
import type { CertificateProfile, ProfileName } from './profiles.js'
import { assertSerial, serialToHex } from './serial.js'
import { signStructure } from './signing.js'

/** A parsed certificate: the facts the CA and the HTTP layer need, nothing mutable. */
export interface CertificateView {
  readonly der: Uint8Array
  readonly serialHex: string
  readonly notBefore: Date
  readonly notAfter: Date
  readonly uris: readonly string[]
  readonly dnsNames: readonly string[]
  readonly ipAddresses: readonly string[]
  readonly spkiDer: Uint8Array
  /** SHA-256 (hex) of the SubjectPublicKeyInfo DER: identifies the key across certificates. */
  readonly spkiSha256Hex: string
  /** RFC 8705 `x5t#S256` of the certificate. */
  readonly thumbprint: string
  readonly isCA: boolean
  readonly subjectKeyId?: Uint8Array
  readonly authorityKeyId?: Uint8Array
  /** DER of the subject and issuer Names (exact bytes, for chaining and CRL issuer names). */
  readonly subjectDer: Uint8Array
  readonly issuerDer: Uint8Array
  readonly publicKey: KeyObject
}

/** An issuing CA: its certificate and the matching private key. */
export interface Issuer {
  readonly certDer: Uint8Array
  readonly privateKey: KeyObject
}

/** A standard profile's name (profiles.ts). */
export type Profile = ProfileName

/** Everything `buildCertificate` needs; the profile fixes the extensions. */
export interface CertificateParams {
  /** A standard profile by name, or a profile value (e.g. one with AIA/CDP URLs). */
  profile: ProfileName | CertificateProfile
  subject: SubjectName
  publicKey: KeyObject
  serial: Uint8Array
  notBefore: Date
  notAfter: Date
  uris?: readonly string[]
  dnsNames?: readonly string[]
  ipAddresses?: readonly string[]
  /** Absent only for a self-signed profile (root), which is signed with `selfPrivateKey`. */
  issuer?: Issuer
  selfPrivateKey?: KeyObject
}

function findExtension(cert: pkijs.Certificate, id: string): pkijs.Extension | undefined {
  const found = (cert.extensions ?? []).filter((e) => e.extnID === id)
  // RFC 5280 §4.2: a certificate MUST NOT include more than one instance of an extension.
  if (found.length > 1) throw new Error(`duplicate extension ${id}`)
  return found[0]
}

function authorityKeyId(cert: pkijs.Certificate): Uint8Array | undefined {
  const e = findExtension(cert, EXT.authorityKeyIdentifier)
  if (!e) return undefined
  const aki = new pkijs.AuthorityKeyIdentifier({
    schema: decodeDer(e.extnValue.valueBlock.valueHexView, 'AKI'),
  })
  return aki.keyIdentifier ? toBytes(aki.keyIdentifier.valueBlock.valueHexView) : undefined
}

function viewOf(der: Uint8Array): CertificateView {
  const cert = new pkijs.Certificate({ schema: decodeDer(der, 'certificate') })
  if (cert.version !== 2) throw new Error('not an X.509 v3 certificate')
  const spki = encode(cert.subjectPublicKeyInfo.toSchema())
  const publicKey = publicKeyFromSpki(spki)
  // Canonical SPKI as node exports it, so the same key always hashes the same way.
  const canonicalSpki = spkiOf(publicKey)
  const sanExt = findExtension(cert, EXT.subjectAltName)
  const san = sanExt ? ext.readSubjectAltName(sanExt) : undefined
  const bcExt = findExtension(cert, EXT.basicConstraints)
  const skiExt = findExtension(cert, EXT.subjectKeyIdentifier)
  const subjectKeyId = skiExt ? ext.readSubjectKeyId(skiExt) : undefined
  const akid = authorityKeyId(cert)
  return {
    der,
    serialHex: serialToHex(cert.serialNumber.valueBlock.valueHexView),
    notBefore: cert.notBefore.value,
    notAfter: cert.notAfter.value,
    uris: Object.freeze(san?.uris ?? []),
    dnsNames: Object.freeze(san?.dnsNames ?? []),
    ipAddresses: Object.freeze(san?.ipAddresses ?? []),
    spkiDer: canonicalSpki,
    spkiSha256Hex: sha256Hex(canonicalSpki),
    thumbprint: x5tS256(der),
    isCA: bcExt ? ext.readBasicConstraints(bcExt).ca : false,
    ...(subjectKeyId ? { subjectKeyId } : {}),
    ...(akid ? { authorityKeyId: akid } : {}),
    subjectDer: nameToDer(cert.subject),
    issuerDer: nameToDer(cert.issuer),
    publicKey,
  }
}

/** Parses a DER certificate. Anything that is not a well-formed v3 certificate: ERR_PEM_INVALID. */
export function parseCertificate(der: Uint8Array): CertificateView {
  try {
    return Object.freeze(viewOf(toBytes(der)))
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e)
    throw new CAError('ERR_PEM_INVALID', `not a valid X.509 certificate: ${reason}`, { cause: e })
  }
}

interface Signer {
  readonly issuerName: pkijs.RelativeDistinguishedNames
  readonly authorityKeyId: Uint8Array
  readonly key: KeyObject
}

/** Resolves who signs: the issuer CA, or the subject itself for a root. Misuse → TypeError. */
function resolveSigner(
  profile: CertificateProfile,
  p: CertificateParams,
  subjectName: Uint8Array,
  ski: Uint8Array,
): Signer {
  if (profile.selfSigned) {
    if (!p.selfPrivateKey || p.issuer) {
      throw new TypeError('a root needs selfPrivateKey and no issuer')
    }
    if (!bytesEqual(spkiOf(p.selfPrivateKey), spkiOf(p.publicKey))) {
      throw new TypeError('selfPrivateKey does not match publicKey')
    }
    return { issuerName: nameFromDer(subjectName), authorityKeyId: ski, key: p.selfPrivateKey }
  }
  if (!p.issuer || p.selfPrivateKey) throw new TypeError(`a ${profile.name} needs an issuer`)
  const ca = issuerView(p.issuer)
  return {
    issuerName: nameFromDer(ca.subjectDer),
    authorityKeyId: ca.subjectKeyId ?? ext.keyIdentifier(ca.spkiDer),
    key: p.issuer.privateKey,
  }
}

// Parsing and checking the issuer costs about as much as signing; the CA passes the same
// Issuer object for every issuance, so remember the checked view per object.
const checkedIssuers = new WeakMap<
  Issuer,
  { der: Uint8Array; key: KeyObject; view: CertificateView }
>()

/** The issuer's certificate, checked to be a CA whose key matches the private key we hold. */
export function issuerView(issuer: Issuer): CertificateView {
  const cached = checkedIssuers.get(issuer)
  if (cached && cached.der === issuer.certDer && cached.key === issuer.privateKey) {
    // Same objects as when checked; the DER is compared too in case it was mutated in place.
    if (bytesEqual(cached.view.der, issuer.certDer)) return cached.view
  }
  const ca = parseCertificate(issuer.certDer)
  if (!ca.isCA) throw new TypeError('issuer certificate is not a CA (basicConstraints cA)')
  if (!bytesEqual(spkiOf(issuer.privateKey), ca.spkiDer)) {
    throw new TypeError('issuer private key does not match the issuer certificate')
  }
  checkedIssuers.set(issuer, { der: issuer.certDer, key: issuer.privateKey, view: ca })
  return ca
}

/** The extensions a profile gives this certificate, in the order both encoders write them. */
function profileExtensions(
  profile: CertificateProfile,
  p: CertificateParams,
  names: { uris: readonly string[]; dnsNames: readonly string[]; ipAddresses: readonly string[] },
  ids: { ski: Uint8Array; aki: Uint8Array },
  emptySubject: boolean,
): pkijs.Extension[] {
  const { basicConstraints: bc, extKeyUsage: eku, aia } = profile
  const out = [
    ext.basicConstraintsExt(bc.ca, bc.pathLen, bc.critical),
    ext.keyUsageExt(keyUsagesFor(profile, requireKeyType(p.publicKey)), profile.keyUsage.critical),
  ]
  if (eku) out.push(ext.extKeyUsageExt(eku.purposes, eku.critical))
  if (names.uris.length + names.dnsNames.length + names.ipAddresses.length > 0) {
    out.push(ext.subjectAltNameExt(names, emptySubject))
  }
  out.push(ext.subjectKeyIdExt(ids.ski))
  // A root's AKI would only repeat its SKI (RFC 5280 §4.2.1.1 allows omitting it).
  if (!profile.selfSigned) out.push(ext.authorityKeyIdExt(ids.aki))
  if (aia.ocsp.length + aia.caIssuers.length > 0) out.push(ext.authorityInfoAccessExt(aia))
  if (profile.crlDistributionPoints.length > 0) {
    out.push(ext.crlDistributionPointsExt(profile.crlDistributionPoints))
  }
  if (profile.ocspNoCheck) out.push(ext.ocspNoCheckExt())
  return out
}

/**
 * Builds and signs an X.509 v3 certificate with the pkijs encoder; returns DER. The profile
 * (by name or as a value) fixes the extensions. Used for CA certificates and as the reference
 * the template encoder (template.ts) is tested against.
 */
export function buildCertificate(p: CertificateParams): Uint8Array {
  const profile = resolveProfile(p.profile)
  requireKeyType(p.publicKey)
  assertSerial(p.serial)
  const notBefore = x509Time(p.notBefore)
  const notAfter = x509Time(p.notAfter)
  if (notAfter.value.getTime() <= notBefore.value.getTime()) {
    throw new TypeError('notAfter must be after notBefore')
  }
  const subject = buildName(p.subject)
  const emptySubject = isEmptyName(subject)
  const names = { uris: p.uris ?? [], dnsNames: p.dnsNames ?? [], ipAddresses: p.ipAddresses ?? [] }
  const lifetime = notAfter.value.getTime() - notBefore.value.getTime()
  checkProfileNames(profile, names, emptySubject, lifetime)
  const spki = spkiOf(p.publicKey)
  const ski = ext.keyIdentifier(spki)
  const signer = resolveSigner(profile, p, nameToDer(subject), ski)
  const cert = new pkijs.Certificate({
    version: 2, // v3
    serialNumber: new asn1js.Integer({ valueHex: p.serial }),
    issuer: signer.issuerName,
    subject,
    notBefore,
    notAfter,
    subjectPublicKeyInfo: new pkijs.PublicKeyInfo({
      schema: decodeDer(spki, 'SubjectPublicKeyInfo'),
    }),
    extensions: profileExtensions(
      profile,
      p,
      names,
      { ski, aki: signer.authorityKeyId },
      emptySubject,
    ),
  })
  return signStructure(cert, signer.key)
}
