import type { Config } from '../config/load.js'
import { formatDuration } from '../config/duration.js'
import type { CertificateState, LineageRecord } from '../db/types.js'
import { CAError } from '../errors.js'

/**
 * Checks a renewal makes of its lineage before anything is signed: the lineage exists and is
 * active, and is not older than `renewal.max_lineage` (then only a new enrolment continues).
 */
export function checkLineageRenewable(
  lineage: LineageRecord | undefined,
  config: Config,
  now: number,
): void {
  if (!lineage || lineage.status !== 'active') {
    throw new CAError(
      'ERR_CLIENT_CERT_REQUIRED',
      'the lineage of the presented certificate was revoked',
    )
  }
  const max = config.renewal.maxLineageMs
  if (max !== undefined && now - lineage.createdAt > max) {
    throw new CAError(
      'ERR_LINEAGE_TOO_OLD',
      `this lineage began at ${new Date(lineage.createdAt).toISOString()}, more than ` +
        `renewal.max_lineage (${formatDuration(max)}) ago: enrol again with a new join token`,
    )
  }
}

/**
 * Key hygiene (LIFECYCLE invariant 12): a key certified (in any state) for another SPIFFE ID
 * is refused, and with `renewal.require_new_key` a renewal must not re-use the presented
 * certificate's key (a copy of the key would otherwise follow the lineage for ever).
 */
export function checkKeyForIdentity(
  spkiSha256: string,
  spiffeId: string,
  holder: string | undefined,
  renewal: { parent: CertificateState | null; requireNewKey: boolean },
): void {
  if (holder !== undefined && holder !== spiffeId) {
    throw new CAError(
      'ERR_POLICY_DENIED',
      'this public key is certified for another SPIFFE ID; generate a new key',
    )
  }
  if (renewal.parent && renewal.requireNewKey && renewal.parent.spkiSha256 === spkiSha256) {
    throw new CAError(
      'ERR_POLICY_DENIED',
      "the CSR re-uses the presented certificate's key; renew with a new key " +
        '(renewal.require_new_key)',
    )
  }
}
