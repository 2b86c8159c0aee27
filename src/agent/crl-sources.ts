import type { X509Certificate } from 'node:crypto'

import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'

import { parseCertificate } from '../x509/certificate.js'
import { keyIdentifier } from '../x509/extensions.js'
import { EXT } from '../x509/oids.js'

/** One CA of the workload's chain and the certificate it issued (whose CDP names its CRL). */
export interface ChainStep {
  readonly ca: X509Certificate
  readonly child: X509Certificate
}

const issued = (child: X509Certificate, ca: X509Certificate) =>
  ca.ca && child.checkIssued(ca) && child.verify(ca.publicKey)

/**
 * The CAs above `leaf`, issuing CA first and the trust anchor last: each found among `chain`
 * (what came with the leaf) or `anchors` by name and signature. Stops where no issuer is found
 * (a chain that does not reach an anchor gets the CRLs of the CAs it has).
 */
export function caPath(
  leaf: X509Certificate,
  chain: readonly X509Certificate[],
  anchors: readonly X509Certificate[],
): ChainStep[] {
  const steps: ChainStep[] = []
  let child = leaf
  for (let depth = 0; depth < 8; depth++) {
    if (anchors.some((a) => a.raw.equals(child.raw))) break // reached an anchor: no issuer above
    const ca = [...chain, ...anchors].find((c) => !c.raw.equals(child.raw) && issued(child, c))
    if (ca === undefined) break
    steps.push({ ca, child })
    child = ca
  }
  return steps
}

/** The cRLDistributionPoints fullName URLs of a certificate (RFC 5280 §4.2.1.13), http(s) only. */
export function distributionPoints(cert: X509Certificate): string[] {
  const parsed = pkijs.Certificate.fromBER(cert.raw)
  const ext = parsed.extensions?.find((e) => e.extnID === EXT.cRLDistributionPoints)
  if (ext === undefined) return []
  const cdp = new pkijs.CRLDistributionPoints({
    schema: asn1js.fromBER(ext.extnValue.valueBlock.valueHexView).result,
  })
  const urls: string[] = []
  for (const point of cdp.distributionPoints) {
    // Only a fullName without reasons or a cRLIssuer names a complete CRL for this issuer.
    if (!Array.isArray(point.distributionPoint) || point.reasons || point.cRLIssuer) continue
    for (const name of point.distributionPoint) {
      if (name.type === 6 && /^https?:\/\//i.test(String(name.value))) urls.push(String(name.value))
    }
  }
  return urls
}

/** The CA's key identifier as the server addresses it (`/v1/ca/{ski}`): lowercase hex. */
export function keyIdHex(ca: X509Certificate): string {
  const view = parseCertificate(ca.raw)
  return Buffer.from(view.subjectKeyId ?? keyIdentifier(view.spkiDer)).toString('hex')
}

/**
 * Where the CRL of `step.ca` may be fetched, in order: the distribution points its child
 * names, then `/v1/ca/{ski}/crl` on the server, and for the issuing CA `/v1/crl`.
 */
export function crlUrls(step: ChainStep, server: string, issuing: boolean): string[] {
  let cdp: string[] = []
  try {
    cdp = distributionPoints(step.child)
  } catch {
    // an unreadable CDP extension: the server's own routes still name the CRL
  }
  let byKey: string[] = []
  try {
    byKey = [`${server}/v1/ca/${keyIdHex(step.ca)}/crl`]
  } catch {
    // no key identifier to address it by
  }
  const urls = [...cdp, ...byKey, ...(issuing ? [`${server}/v1/crl`] : [])]
  return [...new Set(urls)]
}
