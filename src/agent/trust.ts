import type { X509Certificate } from 'node:crypto'

import { validateClientCertificate } from '@certbound/verifier/mtls'
import { parsePemBundle } from '@certbound/verifier/mtls'

/*
 * The agent's trust anchors are the bundle it was started with (`--ca-bundle`, an operator's
 * choice). The server's word alone never changes them: a certificate it sends must chain to
 * them, and a bundle it offers adds an anchor only when a current anchor signed it (a
 * cross-certificate); anything else needs an operator and a new `--ca-bundle`.
 */

const inWindow = (c: X509Certificate, now: Date) =>
  Date.parse(c.validFrom) <= now.getTime() && now.getTime() <= Date.parse(c.validTo)

/** The certificates of a PEM bundle (throws naming `what` when one does not parse). */
export function parseAnchors(pem: string, what: string): X509Certificate[] {
  return parsePemBundle(pem, what)
}

/** The anchors as one PEM bundle, in order. */
export function anchorsPem(anchors: readonly X509Certificate[]): string {
  return anchors.map((a) => a.toString()).join('')
}

/**
 * Checks that a certificate the server sent (leaf, with the chain it came with) chains to the
 * agent's anchors and is a client certificate inside its window.
 *
 * @throws {Error} naming the failed check.
 */
export function checkIssuedToUs(
  leaf: X509Certificate,
  chain: readonly X509Certificate[],
  anchors: readonly X509Certificate[],
  now = new Date(),
): void {
  try {
    validateClientCertificate(leaf, { anchors, intermediates: [] }, now, chain)
  } catch (e) {
    throw new Error(
      `the server sent a certificate that this agent does not trust (${(e as Error).message}); ` +
        'its trust bundle is the one it was started with (--ca-bundle)',
      { cause: e },
    )
  }
}

/**
 * What to make of a trust bundle the server offers: every certificate must be a current anchor
 * or a CA certificate signed by one (and inside its window). Returns the anchors to use from
 * now on (the current ones plus those), or `refused` naming what was not accepted; anchors
 * are never dropped on the server's word.
 */
export function acceptBundle(
  offered: string,
  anchors: readonly X509Certificate[],
  now = new Date(),
): { anchors: X509Certificate[]; refused?: string } {
  let certs: X509Certificate[]
  try {
    certs = parseAnchors(offered, 'the offered bundle')
  } catch (e) {
    return { anchors: [...anchors], refused: (e as Error).message }
  }
  const known = (c: X509Certificate) => anchors.some((a) => a.fingerprint256 === c.fingerprint256)
  const signed = (c: X509Certificate) =>
    c.ca &&
    inWindow(c, now) &&
    anchors.some((a) => a.ca && c.checkIssued(a) && c.verify(a.publicKey))
  const foreign = certs.filter((c) => !known(c) && !signed(c))
  if (certs.length === 0 || foreign.length > 0) {
    const names = foreign.map((c) => c.subject.replace(/\n/g, ', ')).join('; ')
    return { anchors: [...anchors], refused: names || 'an empty bundle' }
  }
  return { anchors: [...anchors, ...certs.filter((c) => !known(c))] }
}
