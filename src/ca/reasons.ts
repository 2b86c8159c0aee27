/** RFC 5280 §5.3.1 reasons a revocation may give; certificateHold and removeFromCRL are refused. */
export const REVOCATION_REASONS = [
  'unspecified',
  'keyCompromise',
  'cACompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'privilegeWithdrawn',
  'aACompromise',
] as const

export type RevocationReasonName = (typeof REVOCATION_REASONS)[number]
