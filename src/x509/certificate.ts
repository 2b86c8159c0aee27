import type { KeyObject } from 'node:crypto'

import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'

import { publicKeyFromSpki, requireKeyType, spkiDer as spkiOf } from '../crypto/keys.js'
import { sha256Hex, x5tS256 } from '../crypto/thumbprint.js'
import { CAError } from '../errors.js'
import { bytesEqual, decodeDer, encode, toBytes, x509Time } from './der.js'
import * as ext from './extensions.js'
import type { KeyUsageName } from './extensions.js'
import { buildName, isEmptyName, nameFromDer, nameToDer } from './name.js'
import type { SubjectName } from './name.js'
import { EKU, EXT } from './oids.js'
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

/**
 * Certificate profiles (RFC 5280): the CA's own root and issuing intermediate, workload/admin
 * client leaves, and the CA's TLS server certificate.
 */
export type Profile = 'root' | 'intermediate' | 'leaf' | 'server'

/** Everything `buildCertificate` needs; the profile fixes the extensions. */
export interface CertificateParams {
  profile: Profile
  subject: SubjectName
  publicKey: KeyObject
  serial: Uint8Array
  notBefore: Date
  notAfter: Date
  uris?: readonly string[]
  dnsNames?: readonly string[]
  ipAddresses?: readonly string[]
  /** Absent only for 'root', which is self-signed with `selfPrivateKey`. */
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
function resolveSigner(p: CertificateParams, subjectName: Uint8Array, ski: Uint8Array): Signer {
  if (p.profile === 'root') {
    if (!p.selfPrivateKey || p.issuer) {
      throw new TypeError('a root needs selfPrivateKey and no issuer')
    }
    if (!bytesEqual(spkiOf(p.selfPrivateKey), spkiOf(p.publicKey))) {
      throw new TypeError('selfPrivateKey does not match publicKey')
    }
    return { issuerName: nameFromDer(subjectName), authorityKeyId: ski, key: p.selfPrivateKey }
  }
  if (!p.issuer || p.selfPrivateKey) throw new TypeError(`a ${p.profile} needs an issuer`)
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

function profileExtensions(
  p: CertificateParams,
  ski: Uint8Array,
  aki: Uint8Array,
  emptySubject: boolean,
): pkijs.Extension[] {
  const names = { uris: p.uris ?? [], dnsNames: p.dnsNames ?? [], ipAddresses: p.ipAddresses ?? [] }
  const hasNames = names.uris.length + names.dnsNames.length + names.ipAddresses.length > 0
  const out: pkijs.Extension[] = []
  switch (p.profile) {
    case 'root':
      out.push(ext.basicConstraintsExt(true), ext.keyUsageExt(['keyCertSign', 'cRLSign']))
      break
    case 'intermediate':
      out.push(
        ext.basicConstraintsExt(true, 0),
        ext.keyUsageExt(['digitalSignature', 'keyCertSign', 'cRLSign']),
      )
      break
    case 'leaf':
    case 'server': {
      if (!hasNames) throw new TypeError(`a ${p.profile} certificate needs at least one SAN`)
      const rsa = p.publicKey.asymmetricKeyType === 'rsa'
      // keyEncipherment only for RSA: TLS 1.2 RSA key transport; meaningless for EC/EdDSA keys.
      const usages: KeyUsageName[] = rsa
        ? ['digitalSignature', 'keyEncipherment']
        : ['digitalSignature']
      const eku =
        p.profile === 'leaf'
          ? [EKU.clientAuth, EKU.serverAuth]
          : [EKU.serverAuth, EKU.certboundServer]
      out.push(ext.basicConstraintsExt(false), ext.keyUsageExt(usages), ext.extKeyUsageExt(eku))
      break
    }
    default:
      throw new TypeError(`unknown profile ${String(p.profile)}`)
  }
  if (hasNames) out.push(ext.subjectAltNameExt(names, emptySubject))
  out.push(ext.subjectKeyIdExt(ski))
  // A root's AKI would only repeat its SKI (RFC 5280 §4.2.1.1 allows omitting it).
  if (p.profile !== 'root') out.push(ext.authorityKeyIdExt(aki))
  return out
}

/** Builds and signs an X.509 v3 certificate for one of the fixed profiles; returns DER. */
export function buildCertificate(p: CertificateParams): Uint8Array {
  requireKeyType(p.publicKey)
  assertSerial(p.serial)
  const notBefore = x509Time(p.notBefore)
  const notAfter = x509Time(p.notAfter)
  if (notAfter.value.getTime() <= notBefore.value.getTime()) {
    throw new TypeError('notAfter must be after notBefore')
  }
  const subject = buildName(p.subject)
  const emptySubject = isEmptyName(subject)
  if (emptySubject && (p.profile === 'root' || p.profile === 'intermediate')) {
    throw new TypeError('a CA certificate needs a non-empty subject (RFC 5280 §4.1.2.6)')
  }
  const spki = spkiOf(p.publicKey)
  const ski = ext.keyIdentifier(spki)
  const signer = resolveSigner(p, nameToDer(subject), ski)
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
    extensions: profileExtensions(p, ski, signer.authorityKeyId, emptySubject),
  })
  return signStructure(cert, signer.key)
}
