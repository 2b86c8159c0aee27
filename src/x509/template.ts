import { createHash, sign } from 'node:crypto'
import type { KeyObject } from 'node:crypto'

import { hashFor, requireKeyType } from '../crypto/keys.js'
import type { KeyType } from '../crypto/keys.js'
import { issuerView } from './certificate.js'
import type { CertificateParams, CertificateView } from './certificate.js'
import { wholeSeconds } from './der.js'
import { childrenOf, readDer } from './der-reader.js'
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

/** Name with one attribute per RDN, O then CN, UTF8String (as name.ts buildName). */
function subjectName(s: CertificateParams['subject']): Uint8Array {
  const rdns: Uint8Array[] = []
  for (const [type, value] of [
    [ATTR.organizationName, s.organization],
    [ATTR.commonName, s.commonName],
  ] as const) {
    if (value === undefined) continue
    if (typeof value !== 'string' || value.length === 0) {
      throw new TypeError(`subject attribute ${type} must be a non-empty string`)
    }
    rdns.push(w.tlv(0x31, w.sequence(w.oid(type), w.utf8String(value))))
  }
  return w.sequence(...rdns)
}

/** GeneralNames in the pkijs encoder's order: URIs, DNS names, IP addresses. */
function sanValue(names: {
  uris: readonly string[]
  dnsNames: readonly string[]
  ipAddresses: readonly string[]
}): Uint8Array {
  return w.sequence(
    ...names.uris.map((v) => w.ascii(0x86, ia5(v, 'URI SAN'))),
    ...names.dnsNames.map((v) => w.ascii(0x82, ia5(v, 'DNS SAN'))),
    ...names.ipAddresses.map((v) => w.tlv(0x87, ipToBytes(v))),
  )
}

/** RFC 7093 §2 method 1 over the subjectPublicKey BIT STRING value (as keyIdentifier). */
function subjectKeyId(spki: Uint8Array): Uint8Array {
  const bits = childrenOf(spki, readDer(spki))[1]!
  const key = spki.subarray(bits.start + 1, bits.end)
  return new Uint8Array(createHash('sha256').update(key).digest().subarray(0, 20))
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
  const subject = subjectName(p.subject)
  const emptySubject = subject.length === 2
  const names = { uris: p.uris ?? [], dnsNames: p.dnsNames ?? [], ipAddresses: p.ipAddresses ?? [] }
  checkProfileNames(profile, names, emptySubject, notAfter.getTime() - notBefore.getTime())
  const spki = spkiOfKey(p.publicKey)
  if (!p.issuer || p.selfPrivateKey) throw new TypeError(`a ${profile.name} needs an issuer`)
  const issuer = piecesOf(issuerView(p.issuer), p.issuer.privateKey)
  let pieces = profilePieces.get(profile)
  if (!pieces) profilePieces.set(profile, (pieces = encodeProfile(profile)))
  const hasNames = names.uris.length + names.dnsNames.length + names.ipAddresses.length > 0
  const extensions = w.tlv(
    0xa3,
    w.sequence(
      subjectType.startsWith('rsa-') ? pieces.headRsa : pieces.head,
      // §4.2.1.6: with an empty subject the SAN carries the identity and is critical.
      hasNames ? extension(EXT.subjectAltName, emptySubject, sanValue(names)) : new Uint8Array(),
      extension(EXT.subjectKeyIdentifier, false, w.octetString(subjectKeyId(spki))),
      issuer.aki,
      pieces.tail,
    ),
  )
  const tbs = w.sequence(
    VERSION_3,
    w.integerOf(p.serial),
    issuer.algorithm,
    issuer.name,
    w.sequence(w.x509TimeDer(notBefore), w.x509TimeDer(notAfter)),
    subject,
    spki,
    extensions,
  )
  // Pre-issuance lint (lint.ts): exactly these bytes are signed, or nothing is.
  lint?.(tbs)
  const signature = sign(issuer.hash, tbs, issuer.key)
  return w.sequence(tbs, issuer.algorithm, w.bitString(signature))
}
