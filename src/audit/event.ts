import type { RawAuditEvent } from '../db/types.js'

/**
 * The bytes an audit event is logged as: its leaf data, hashed into the tree as
 * SHA-256(0x00 || leaf data) (RFC 9162 §2.1.1). One JSON object, written from the stored row
 * and nothing else, so that `audit verify` recomputes it from the database and an exported
 * line carries it verbatim:
 *
 *   {"v":1,"id":42,"at":1718000000000,"actor":"…","action":"certificate.enroll",
 *    "subject":"4f…","details":{…}}
 *
 * Strings are JSON.stringify's (ECMA-262 QuoteJSONString), `details` is the stored JSON text as
 * it is, `subject` and `details` may be null. The event's row id is part of it, so swapping two
 * events' places in the tree, or their contents, changes two leaf hashes.
 */
export function leafData(e: RawAuditEvent): Buffer {
  const text =
    `{"v":1,"id":${e.id},"at":${e.at},"actor":${JSON.stringify(e.actor)},` +
    `"action":${JSON.stringify(e.action)},"subject":${JSON.stringify(e.subject)},` +
    `"details":${e.details ?? 'null'}}`
  return Buffer.from(text, 'utf8')
}

/** The audit actions that issue a certificate, whose subject is its serial. */
export const ISSUANCE_ACTIONS: readonly string[] = [
  'certificate.enroll',
  'certificate.renew',
  'certificate.issue_admin',
  'certificate.issue_server',
  'ca.create_root',
  'ca.create_intermediate',
]
