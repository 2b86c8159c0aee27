import { hash, sign } from 'node:crypto'
import type { KeyObject } from 'node:crypto'

import { hashFor, requireKeyType } from '../crypto/keys.js'
import type { KeyType } from '../crypto/keys.js'
import { issuerView } from './certificate.js'
import type { CertificateParams, CertificateView } from './certificate.js'
import { wholeSeconds } from './der.js'
import { readTlv } from './der-reader.js'
import * as w from './der-writer.js'
import { ia5, ipToBytes, keyIdentifier, keyUsageBits } from './extensions.js'
import { ACCESS_METHOD, ATTR, EXT, SIG } from './oids.js'
import { checkProfileNames, keyUsagesFor, resolveProfile } from './profiles.js'
import type { CertificateProfile } from './profiles.js'
import { assertSerial } from './serial.js'
import { spkiOfKey } from './spki.js'

// The template encoder: the same certificates as buildCertificate (certificate.ts), byte for
// byte, assembled from DER pieces instead of asn1js objects. What does not change between
// issuances is encoded once: per issuer (its Name, the AKI, the signature AlgorithmIdentifier)
// and per profile (basicConstraints, keyUsage, EKU, AIA, CDP). RFC 5280 §4.1:
//   TBSCertificate ::= SEQUENCE { version [0] EXPLICIT v3, serialNumber, signature,
//     issuer, validity, subject, subjectPublicKeyInfo, extensions [3] EXPLICIT Extensions }

const VERSION_3 = Uint8Array.of(0xa0, 0x03, 0x02, 0x01, 0x02)

/** Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING } */
function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return critical
    ? w.sequence(w.oid(id), w.TRUE, w.octetString(value))
    : w.sequence(w.oid(id), w.octetString(value))
}

interface IssuerPieces {
  readonly name: Uint8Array
  readonly aki: Uint8Array
  readonly algorithm: Uint8Array
  readonly key: KeyObject
  readonly hash: 'sha256' | 'sha384' | null
}

// RFC 5758 §3.2 (no parameters), RFC 4055 §5 (NULL parameters), RFC 8410 §3 (none).
/** The DER signature AlgorithmIdentifier for a signing key of this type (as signing.ts). */
export function signatureAlgorithmDer(type: KeyType): Uint8Array {
  if (type === 'ec-p256') return w.sequence(w.oid(SIG.ecdsaWithSha256))
  if (type === 'ec-p384') return w.sequence(w.oid(SIG.ecdsaWithSha384))
  if (type === 'ed25519') return w.sequence(w.oid(SIG.ed25519))
  return w.sequence(w.oid(SIG.sha256WithRsa), w.NULL)
}

// Keyed by the checked view issuerView caches per Issuer: a new or changed issuer gets a new
// view, hence new pieces.
const issuerPieces = new WeakMap<CertificateView, IssuerPieces>()

function piecesOf(view: CertificateView, key: KeyObject): IssuerPieces {
  const cached = issuerPieces.get(view)
  if (cached && cached.key === key) return cached
  const type = requireKeyType(key)
  const keyId = view.subjectKeyId ?? keyIdentifier(view.spkiDer)
  const pieces = {
    name: view.subjectDer,
    // authorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING } (§4.2.1.1)
    aki: extension(EXT.authorityKeyIdentifier, false, w.sequence(w.tlv(0x80, keyId))),
    algorithm: signatureAlgorithmDer(type),
    key,
    hash: hashFor(type),
  }
  issuerPieces.set(view, pieces)
  return pieces
}

interface ProfilePieces {
  readonly head: Uint8Array // basicConstraints, keyUsage (non-RSA), EKU
  readonly headRsa: Uint8Array // the same with the RSA key usages
  readonly tail: Uint8Array // AIA, CDP, ocsp-nocheck
}

const profilePieces = new WeakMap<CertificateProfile, ProfilePieces>()

function encodeProfile(p: CertificateProfile): ProfilePieces {
  const bc = p.basicConstraints
  const bcValue = w.sequence(
    ...(bc.ca ? [w.TRUE] : []), // cA DEFAULT FALSE: absent when false (X.690 §11.5)
    ...(bc.pathLen === undefined ? [] : [w.smallInteger(bc.pathLen)]),
  )
  const head = (type: KeyType): Uint8Array => {
    const { bytes, unusedBits } = keyUsageBits(keyUsagesFor(p, type))
    const eku = p.extKeyUsage
    return concat([
      extension(EXT.basicConstraints, bc.critical, bcValue),
      extension(EXT.keyUsage, p.keyUsage.critical, w.bitString(bytes, unusedBits)),
      ...(eku
        ? [extension(EXT.extKeyUsage, eku.critical, w.sequence(...eku.purposes.map(w.oid)))]
        : []),
    ])
  }
  const uri = (u: string, what: string): Uint8Array => w.ascii(0x86, ia5(u, what))
  const access = [
    ...p.aia.ocsp.map((u) => w.sequence(w.oid(ACCESS_METHOD.ocsp), uri(u, 'AIA URL'))),
    ...p.aia.caIssuers.map((u) => w.sequence(w.oid(ACCESS_METHOD.caIssuers), uri(u, 'AIA URL'))),
  ]
  const cdp = p.crlDistributionPoints.map((u) => uri(u, 'CRL distribution point URL'))
  const tail = concat([
    ...(access.length ? [extension(EXT.authorityInfoAccess, false, w.sequence(...access))] : []),
    // DistributionPoint { distributionPoint [0] { fullName [0] IMPLICIT GeneralNames } }
    ...(cdp.length
      ? [
          extension(
            EXT.cRLDistributionPoints,
            false,
            w.sequence(w.sequence(w.tlv(0xa0, w.tlv(0xa0, ...cdp)))),
          ),
        ]
      : []),
    ...(p.ocspNoCheck ? [extension(EXT.ocspNoCheck, false, w.NULL)] : []),
  ])
  // RSA is the only key type with extra usages; every RSA size shares one encoding.
  return { head: head('ec-p256'), headRsa: head('rsa-2048'), tail }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return Buffer.concat(parts)
}

// Pieces every leaf carries, encoded once.
const SAN_OID = w.oid(EXT.subjectAltName)
const CN_OID = w.oid(ATTR.commonName)
// SEQUENCE { subjectKeyIdentifier, OCTET STRING { OCTET STRING (20) } }: the key id follows.
const SKI_HEAD = extension(
  EXT.subjectKeyIdentifier,
  false,
  w.octetString(new Uint8Array(20)),
).subarray(0, -20)
const SKI_SIZE = SKI_HEAD.length + 20

/** RelativeDistinguishedName ::= SET { SEQUENCE { type, UTF8String value } } */
function rdn(type: string, value: string | undefined): Uint8Array | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || value.length === 0) {
    throw new TypeError(`subject attribute ${type} must be a non-empty string`)
  }
  const id = type === ATTR.commonName ? CN_OID : w.oid(type)
  const text = Buffer.from(value, 'utf8')
  const atv = id.length + w.tlvSize(text.length)
  const out = new Uint8Array(w.tlvSize(w.tlvSize(atv)))
  let at = w.putHeader(out, 0, 0x31, w.tlvSize(atv))
  at = w.putBytes(out, w.putHeader(out, at, 0x30, atv), id)
  w.putBytes(out, w.putHeader(out, at, 0x0c, text.length), text) // UTF8String
  return out
}

// The organization is the same in every leaf of a CA: its RDN is encoded once per value.
const organizations = new Map<string, Uint8Array>()
function organizationRdn(value: string | undefined): Uint8Array | undefined {
  const hit = typeof value === 'string' ? organizations.get(value) : undefined
  if (hit) return hit
  const der = rdn(ATTR.organizationName, value)
  if (der && organizations.size < 64) organizations.set(value!, der)
  return der
}

/** One GeneralName: its [n] IMPLICIT tag and content octets. */
interface GeneralName {
  readonly tag: number
  readonly value: string | Uint8Array // IA5 text (checked printable ASCII) or octets
}

/** GeneralNames in the pkijs encoder's order: URIs, DNS names, IP addresses. */
function generalNames(names: {
  uris: readonly string[]
  dnsNames: readonly string[]
  ipAddresses: readonly string[]
}): GeneralName[] {
  const out: GeneralName[] = []
  for (const v of names.uris) out.push({ tag: 0x86, value: ia5(v, 'URI SAN') })
  for (const v of names.dnsNames) out.push({ tag: 0x82, value: ia5(v, 'DNS SAN') })
  for (const v of names.ipAddresses) out.push({ tag: 0x87, value: ipToBytes(v) })
  return out
}

/** Writes a GeneralName; IA5 text is ASCII, one octet per character. */
function putGeneralName(out: Uint8Array, at: number, g: GeneralName): number {
  at = w.putHeader(out, at, g.tag, g.value.length)
  if (typeof g.value !== 'string') return w.putBytes(out, at, g.value)
  for (let i = 0; i < g.value.length; i++) out[at++] = g.value.charCodeAt(i)
  return at
}

/** RFC 7093 §2 method 1 over the subjectPublicKey BIT STRING value (as keyIdentifier). */
function subjectKeyId(spki: Uint8Array): Uint8Array {
  // spkiOfKey's bytes are node's canonical encoding: no need to re-check them as DER.
  const top = readTlv(spki, 0, spki.length)
  const alg = readTlv(spki, top.start, top.end)
  const bits = readTlv(spki, alg.end, top.end)
  return hash('sha256', spki.subarray(bits.start + 1, bits.end), 'buffer')
}

/**
 * Builds and signs a certificate from pre-encoded profile and issuer pieces; the output is
 * byte-identical to `buildCertificate` with the same params (test/unit/x509 proves it), and
 * misuse throws the same TypeErrors. Self-signed profiles (a root) go to `buildCertificate`.
 * `lint` sees the TBSCertificate before it is signed and refuses by throwing.
 */
export function buildCertificateFast(
  p: CertificateParams,
  lint?: (tbs: Uint8Array) => void,
): Uint8Array {
  const profile = resolveProfile(p.profile)
  if (profile.selfSigned) throw new TypeError('self-signed profiles use buildCertificate')
  const subjectType = requireKeyType(p.publicKey)
  assertSerial(p.serial)
  const notBefore = wholeSeconds(p.notBefore)
  const notAfter = wholeSeconds(p.notAfter)
  if (notAfter.getTime() <= notBefore.getTime()) {
    throw new TypeError('notAfter must be after notBefore')
  }
  // Name with one attribute per RDN, O then CN, UTF8String (as name.ts buildName).
  const org = organizationRdn(p.subject.organization)
  const cn = rdn(ATTR.commonName, p.subject.commonName)
  const subjectSize = (org?.length ?? 0) + (cn?.length ?? 0)
  const emptySubject = subjectSize === 0
  const names = { uris: p.uris ?? [], dnsNames: p.dnsNames ?? [], ipAddresses: p.ipAddresses ?? [] }
  checkProfileNames(profile, names, emptySubject, notAfter.getTime() - notBefore.getTime())
  const spki = spkiOfKey(p.publicKey)
  if (!p.issuer || p.selfPrivateKey) throw new TypeError(`a ${profile.name} needs an issuer`)
  const issuer = piecesOf(issuerView(p.issuer), p.issuer.privateKey)
  let pieces = profilePieces.get(profile)
  if (!pieces) profilePieces.set(profile, (pieces = encodeProfile(profile)))
  const head = subjectType.startsWith('rsa-') ? pieces.headRsa : pieces.head
  const general = generalNames(names)
  // §4.2.1.6: with an empty subject the SAN carries the identity and is critical.
  let namesSize = 0
  for (const g of general) namesSize += w.tlvSize(g.value.length)
  const sanSize = general.length
    ? SAN_OID.length + (emptySubject ? w.TRUE.length : 0) + w.tlvSize(w.tlvSize(namesSize))
    : 0
  const extsSize =
    head.length +
    (sanSize && w.tlvSize(sanSize)) +
    SKI_SIZE +
    issuer.aki.length +
    pieces.tail.length
  const from = w.x509TimeDer(notBefore)
  const to = w.x509TimeDer(notAfter)
  const tbsSize =
    VERSION_3.length +
    w.tlvSize(p.serial.length) +
    issuer.algorithm.length +
    issuer.name.length +
    w.tlvSize(from.length + to.length) +
    w.tlvSize(subjectSize) +
    spki.length +
    w.tlvSize(w.tlvSize(extsSize))
  // One buffer, written in order (RFC 5280 §4.1 field order).
  const tbs = new Uint8Array(w.tlvSize(tbsSize))
  let at = w.putHeader(tbs, 0, 0x30, tbsSize)
  at = w.putBytes(tbs, at, VERSION_3)
  at = w.putBytes(tbs, w.putHeader(tbs, at, 0x02, p.serial.length), p.serial)
  at = w.putBytes(tbs, at, issuer.algorithm)
  at = w.putBytes(tbs, at, issuer.name)
  at = w.putHeader(tbs, at, 0x30, from.length + to.length)
  at = w.putBytes(tbs, w.putBytes(tbs, at, from), to)
  at = w.putHeader(tbs, at, 0x30, subjectSize)
  if (org) at = w.putBytes(tbs, at, org)
  if (cn) at = w.putBytes(tbs, at, cn)
  at = w.putBytes(tbs, at, spki)
  at = w.putHeader(tbs, w.putHeader(tbs, at, 0xa3, w.tlvSize(extsSize)), 0x30, extsSize)
  at = w.putBytes(tbs, at, head)
  if (sanSize) {
    at = w.putBytes(tbs, w.putHeader(tbs, at, 0x30, sanSize), SAN_OID)
    if (emptySubject) at = w.putBytes(tbs, at, w.TRUE)
    at = w.putHeader(tbs, w.putHeader(tbs, at, 0x04, w.tlvSize(namesSize)), 0x30, namesSize)
    for (const g of general) at = putGeneralName(tbs, at, g)
  }
  at = w.putBytes(tbs, at, SKI_HEAD)
  at = w.putBytes(tbs, at, subjectKeyId(spki).subarray(0, 20))
  at = w.putBytes(tbs, at, issuer.aki)
  at = w.putBytes(tbs, at, pieces.tail)
  if (at !== tbs.length) throw new Error(`template encoder: wrote ${at} of ${tbs.length} octets`)
  // Pre-issuance lint (lint.ts): exactly these bytes are signed, or nothing is.
  lint?.(tbs)
  const signature = sign(issuer.hash, tbs, issuer.key)
  // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }
  const certSize = tbs.length + issuer.algorithm.length + w.tlvSize(1 + signature.length)
  const cert = new Uint8Array(w.tlvSize(certSize))
  at = w.putBytes(cert, w.putHeader(cert, 0, 0x30, certSize), tbs)
  at = w.putBytes(cert, at, issuer.algorithm)
  at = w.putHeader(cert, at, 0x03, 1 + signature.length)
  cert[at++] = 0 // no unused bits
  w.putBytes(cert, at, signature)
  return cert
}
