import { childrenOf, contentOf, oidText, readDer, type Tlv } from './der-reader.js'
import { keyUsageBits } from './extensions.js'
import { ACCESS_METHOD, EXT, KEY_ALG, SIG } from './oids.js'
import { keyUsagesFor, type CertificateProfile } from './profiles.js'

// Pre-issuance linting, as public CAs do with zlint: the to-be-signed bytes are read back with
// the strict DER reader and checked against the profile they were built from; only bytes that
// pass are signed. The checks are RFC 5280 §4.1-4.2 and §5 rules and certbound's profile rules.

/** A to-be-signed structure that breaks its profile: never signed. */
export class LintError extends Error {
  constructor(readonly violations: readonly string[]) {
    super(`pre-issuance lint: ${violations.join('; ')}`)
  }
}

export interface CertificateLintRules {
  readonly profile: CertificateProfile
  /** Longest notBefore..notAfter. */
  readonly maxLifetimeMs: number
  /** Workload and admin leaves: checks the one URI SAN (a SPIFFE ID of the trust domain). */
  readonly spiffeIdProblem?: (uri: string) => string | undefined
}

const SIGNATURES = new Set<string>([
  SIG.ecdsaWithSha256,
  SIG.ecdsaWithSha384,
  SIG.sha256WithRsa,
  SIG.ed25519,
])

/** Two ASCII digits at `i`, or NaN. */
function digits2(buf: Uint8Array, i: number): number {
  const a = buf[i]! - 0x30
  const b = buf[i + 1]! - 0x30
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : NaN
}

/** UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ (RFC 5280 §4.1.2.5), else NaN. */
function timeOf(buf: Uint8Array, t: Tlv): number {
  const n = t.end - t.start
  const utc = t.tag === 0x17
  if (n !== (utc ? 13 : 15) || (!utc && t.tag !== 0x18) || buf[t.end - 1] !== 0x5a) return NaN
  let i = t.start
  let y = digits2(buf, i)
  i += 2
  if (utc) y += y < 50 ? 2000 : 1900
  else {
    y = y * 100 + digits2(buf, i)
    i += 2
  }
  // NaN anywhere (a non-digit) makes the result NaN, as a pattern match would refuse it.
  const month = digits2(buf, i)
  const day = digits2(buf, i + 2)
  return Date.UTC(y, month - 1, day, digits2(buf, i + 4), digits2(buf, i + 6), digits2(buf, i + 8))
}

/** Every RDN of a Name holds exactly one attribute (no multi-valued RDNs). */
function checkName(buf: Uint8Array, name: Tlv, what: string, v: string[]): number {
  if (name.tag !== 0x30) return (v.push(`${what} is not a Name`), 0)
  const rdns = childrenOf(buf, name)
  for (const rdn of rdns) {
    if (rdn.tag !== 0x31 || childrenOf(buf, rdn).length !== 1)
      v.push(`${what} has an RDN with other than one attribute`)
  }
  return rdns.length
}

function serialBits(buf: Uint8Array, t: Tlv): number {
  const c = contentOf(buf, t)
  if (c.length === 0 || c[0]! & 0x80) return -1
  let i = 0
  while (i < c.length - 1 && c[i] === 0) i++
  return (c.length - i) * 8 - Math.clz32(c[i]!) + 24
}

interface Extension {
  readonly critical: boolean
  readonly value: Uint8Array
}

function extensionsOf(buf: Uint8Array, exts: Tlv | undefined, v: string[]): Map<string, Extension> {
  const out = new Map<string, Extension>()
  if (!exts) return out
  for (const e of childrenOf(buf, childrenOf(buf, exts)[0]!)) {
    const [id, a, b] = childrenOf(buf, e)
    const oid = oidText(buf, id!)
    // RFC 5280 §4.2: a certificate MUST NOT include more than one instance of an extension.
    if (out.has(oid)) v.push(`duplicate extension ${oid}`)
    const critical = a?.tag === 0x01 && buf[a.start] === 0xff
    out.set(oid, { critical, value: contentOf(buf, b ?? a!) })
  }
  return out
}

interface Expectations {
  readonly keyUsage: { readonly der: Uint8Array; readonly names: string }
  readonly keyUsageRsa: { readonly der: Uint8Array; readonly names: string }
  readonly purposes: string // sorted, comma-joined
}

// What a profile's keyUsage and EKU must be, worked out once per (frozen) profile value.
const expectations = new WeakMap<CertificateProfile, Expectations>()
function expectationsOf(p: CertificateProfile): Expectations {
  let e = expectations.get(p)
  if (e) return e
  const usage = (type: 'rsa-2048' | 'ec-p256') => {
    const { bytes, unusedBits } = keyUsageBits(keyUsagesFor(p, type))
    const der = Buffer.concat([Buffer.of(0x03, bytes.length + 1, unusedBits), bytes])
    return { der, names: keyUsagesFor(p, type).join(', ') }
  }
  e = {
    keyUsage: usage('ec-p256'),
    keyUsageRsa: usage('rsa-2048'),
    purposes: [...(p.extKeyUsage?.purposes ?? [])].sort().join(','),
  }
  expectations.set(p, e)
  return e
}

/** The profile's extensions: present or absent as it says, with its criticality and values. */
function checkProfileExtensions(
  exts: Map<string, Extension>,
  r: CertificateLintRules,
  isRsa: boolean,
  v: string[],
): void {
  const p = r.profile
  const need = (oid: string, name: string, critical?: boolean): Extension | undefined => {
    const e = exts.get(oid)
    if (!e) v.push(`missing ${name}`)
    else if (critical !== undefined && e.critical !== critical)
      v.push(`${name} must ${critical ? '' : 'not '}be critical`)
    return e
  }
  const bc = need(EXT.basicConstraints, 'basicConstraints', p.basicConstraints.critical)
  if (bc) {
    const seq = readDer(bc.value)
    const kids = childrenOf(bc.value, seq)
    const ca = kids[0]?.tag === 0x01 && bc.value[kids[0].start] === 0xff
    if (ca !== p.basicConstraints.ca) v.push(`basicConstraints cA must be ${p.basicConstraints.ca}`)
    const pathLen = kids.find((k) => k.tag === 0x02)
    const expected = p.basicConstraints.pathLen
    if ((pathLen ? contentOf(bc.value, pathLen)[0] : undefined) !== expected)
      v.push(`basicConstraints pathLenConstraint must be ${expected ?? 'absent'}`)
  }
  const ku = need(EXT.keyUsage, 'keyUsage', p.keyUsage.critical)
  const want = expectationsOf(p)
  if (ku) {
    const k = isRsa ? want.keyUsageRsa : want.keyUsage
    if (Buffer.compare(k.der, ku.value) !== 0) v.push(`keyUsage must be exactly ${k.names}`)
  }
  const eku = exts.get(EXT.extKeyUsage)
  if (p.extKeyUsage) {
    if (!eku) v.push('missing extendedKeyUsage')
    else {
      const purposes = childrenOf(eku.value, readDer(eku.value)).map((t) => oidText(eku.value, t))
      if (purposes.sort().join(',') !== want.purposes)
        v.push(`extendedKeyUsage must be ${want.purposes}`)
    }
  } else if (eku) v.push(`a ${p.name} certificate carries no extendedKeyUsage`)
  need(EXT.subjectKeyIdentifier, 'subjectKeyIdentifier', false)
  if (!p.selfSigned) need(EXT.authorityKeyIdentifier, 'authorityKeyIdentifier', false)
  const wantAia = p.aia.ocsp.length + p.aia.caIssuers.length > 0
  if (wantAia !== exts.has(EXT.authorityInfoAccess))
    v.push(`authorityInfoAccess must be ${wantAia ? 'present' : 'absent'}`)
  const aia = exts.get(EXT.authorityInfoAccess)
  if (wantAia && aia) checkAia(aia, p, v)
  const wantCdp = p.crlDistributionPoints.length > 0
  if (wantCdp !== exts.has(EXT.cRLDistributionPoints))
    v.push(`cRLDistributionPoints must be ${wantCdp ? 'present' : 'absent'}`)
  if (p.ocspNoCheck !== exts.has(EXT.ocspNoCheck))
    v.push(`ocsp-nocheck must be ${p.ocspNoCheck ? 'present' : 'absent'}`)
}

function checkAia(aia: Extension, p: CertificateProfile, v: string[]): void {
  const methods = childrenOf(aia.value, readDer(aia.value)).map((d) =>
    oidText(aia.value, childrenOf(aia.value, d)[0]!),
  )
  if (p.aia.ocsp.length && !methods.includes(ACCESS_METHOD.ocsp)) v.push('AIA lacks the OCSP URL')
  if (p.aia.caIssuers.length && !methods.includes(ACCESS_METHOD.caIssuers))
    v.push('AIA lacks the caIssuers URL')
}

function latin1(buf: Uint8Array, t: Tlv): string {
  let s = ''
  for (let i = t.start; i < t.end; i++) s += String.fromCharCode(buf[i]!)
  return s
}

/** SAN rules: forms the profile allows, no duplicates, a leaf's one SPIFFE ID. */
function checkSan(
  exts: Map<string, Extension>,
  r: CertificateLintRules,
  emptySubject: boolean,
  v: string[],
): void {
  const san = exts.get(EXT.subjectAltName)
  const p = r.profile
  if (!san) {
    if (p.names.sanRequired) v.push('missing subjectAltName')
    return
  }
  if (emptySubject && !san.critical) v.push('subjectAltName must be critical with an empty subject')
  const names = childrenOf(san.value, readDer(san.value))
  const seen = new Set<string>()
  const uris: string[] = []
  for (const n of names) {
    // latin1 maps octets to characters one to one: equal keys are equal octets.
    const text = latin1(san.value, n)
    const key = `${n.tag}:${n.tag === 0x82 ? text.toLowerCase() : text}`
    if (seen.has(key)) v.push('duplicate subjectAltName entry')
    seen.add(key)
    const kind = n.tag === 0x86 ? 'uri' : n.tag === 0x82 ? 'dns' : n.tag === 0x87 ? 'ip' : 'other'
    if (kind === 'other' || !p.names.sanKinds.includes(kind))
      v.push(`a ${p.name} certificate carries no ${kind} SAN`)
    if (kind === 'uri') uris.push(text)
  }
  if (r.spiffeIdProblem) {
    if (uris.length !== 1)
      v.push(`a ${p.name} certificate carries exactly one URI SAN, not ${uris.length}`)
    for (const u of uris) {
      const problem = r.spiffeIdProblem(u)
      if (problem)
        v.push(`URI SAN ${JSON.stringify(u)} is not a SPIFFE ID of the trust domain: ${problem}`)
    }
  }
}

/** Lints a TBSCertificate (RFC 5280 §4.1) against its profile; throws LintError. */
export function lintCertificateTbs(tbs: Uint8Array, rules: CertificateLintRules): void {
  const v: string[] = []
  let top: Tlv
  try {
    top = readDer(tbs)
  } catch (e) {
    throw new LintError([`not DER: ${(e as Error).message}`])
  }
  const f = childrenOf(tbs, top)
  const [version, serial, sig, issuer, validity, subject, spki, exts] = f
  if (version?.tag !== 0xa0 || contentOf(tbs, version).at(-1) !== 2) v.push('not a v3 certificate')
  if (serial?.tag !== 0x02) v.push('no serial')
  else {
    const bits = serialBits(tbs, serial)
    // CA/B BR §7.1: at least 64 bits from a CSPRNG; RFC 5280 §4.1.2.2: positive, ≤ 20 octets.
    if (bits < 64 || bits > 159)
      v.push(`the serial must be a positive integer of 64-159 bits, not ${bits}`)
  }
  if (!sig || !SIGNATURES.has(oidText(tbs, childrenOf(tbs, sig)[0]!)))
    v.push('signature algorithm not allowed')
  if (issuer && checkName(tbs, issuer, 'issuer', v) === 0) v.push('empty issuer')
  const subjectRdns = subject ? checkName(tbs, subject, 'subject', v) : 0
  if (subjectRdns === 0 && rules.profile.names.subjectRequired) v.push('empty subject')
  if (validity) {
    const [nb, na] = childrenOf(tbs, validity)
    const from = timeOf(tbs, nb!)
    const to = timeOf(tbs, na!)
    if (!(from < to)) v.push('notBefore must be before notAfter')
    else if (to - from > rules.maxLifetimeMs) v.push(`lifetime over ${rules.maxLifetimeMs} ms`)
  }
  const alg = spki ? oidText(tbs, childrenOf(tbs, childrenOf(tbs, spki)[0]!)[0]!) : ''
  if (exts?.tag !== 0xa3 || f.length !== 8) v.push('unexpected TBSCertificate fields')
  const ext = extensionsOf(tbs, exts?.tag === 0xa3 ? exts : undefined, v)
  checkProfileExtensions(ext, rules, alg === KEY_ALG.rsaEncryption, v)
  checkSan(ext, rules, subjectRdns === 0, v)
  if (v.length) throw new LintError(v)
}

/** Lints a TBSCertList (RFC 5280 §5.1): v2, one-attribute RDNs, window, AKI and cRLNumber once. */
export function lintCrlTbs(tbs: Uint8Array, rules: { readonly maxValidityMs: number }): void {
  const v: string[] = []
  const top = readDer(tbs)
  const f = childrenOf(tbs, top)
  if (f[0]?.tag !== 0x02 || contentOf(tbs, f[0])[0] !== 1) v.push('not a v2 CRL')
  if (!f[1] || !SIGNATURES.has(oidText(tbs, childrenOf(tbs, f[1])[0]!)))
    v.push('signature algorithm not allowed')
  if (f[2] && checkName(tbs, f[2], 'issuer', v) === 0) v.push('empty issuer')
  const thisUpdate = f[3] ? timeOf(tbs, f[3]) : NaN
  const nextUpdate = f[4] ? timeOf(tbs, f[4]) : NaN
  if (!(thisUpdate < nextUpdate)) v.push('nextUpdate must be after thisUpdate')
  else if (nextUpdate - thisUpdate > rules.maxValidityMs) v.push('validity too long')
  const exts = f.at(-1)
  const ext = extensionsOf(tbs, exts?.tag === 0xa0 ? exts : undefined, v)
  if (!ext.has(EXT.authorityKeyIdentifier)) v.push('missing authorityKeyIdentifier')
  if (!ext.has(EXT.cRLNumber)) v.push('missing cRLNumber')
  if ([...ext.values()].some((e) => e.critical)) v.push('no CRL extension may be critical')
  if (v.length) throw new LintError(v)
}
