import type { CommitRefusalReason } from '../db/types.js'
import { CAError } from '../errors.js'
import { oidcRefusal } from '../federation/errors.js'

/** Why a commit changed nothing (its re-checks failed), as the error the client gets. */
export function refusalError(reason: CommitRefusalReason): CAError {
  switch (reason) {
    case 'join_token_spent':
      return new CAError(
        'ERR_JOIN_TOKEN_INVALID',
        'the join token is unknown, already used or expired',
      )
    case 'oidc_token_spent':
      return oidcRefusal('replay', 'this token has enrolled already; each token enrols once')
    case 'entry_disabled':
      return new CAError('ERR_ENTRY_DISABLED', 'the entry was disabled')
    case 'key_compromised':
      return new CAError(
        'ERR_POLICY_DENIED',
        'this public key was revoked for keyCompromise and is refused',
      )
    case 'parent_not_valid':
      return new CAError(
        'ERR_CLIENT_CERT_REQUIRED',
        'the presented certificate was revoked or expired',
      )
    case 'key_other_identity':
      return new CAError(
        'ERR_POLICY_DENIED',
        'this public key is certified for another SPIFFE ID; generate a new key',
      )
    case 'lineage_revoked':
      return new CAError(
        'ERR_CLIENT_CERT_REQUIRED',
        'the lineage of the presented certificate was revoked',
      )
    case 'clone_suspected':
      return new CAError('ERR_CLONE_SUSPECTED', 'lineage revoked: suspected clone')
    case 'proof_replayed':
      return new CAError(
        'ERR_CLIENT_CERT_REQUIRED',
        'this proof of possession was used already (its jti is single use)',
      )
  }
}
