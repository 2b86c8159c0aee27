import type { DbInspector } from '../helpers/db-inspect.js'

/*
 * What the database must look like after any crash, read from the database alone: every state
 * change has its one audit event and every audit event of a state change has its state
 * (LIFECYCLE invariant 7), no token family is half-rotated (invariant 4), nothing bound to a
 * revoked certificate is active (invariant 5). Each check returns readable violations, so a
 * failing run says what it found.
 */

interface Audit {
  id: number
  actor: string
  action: string
  subject: string | null
  details: Record<string, any>
}

interface Snapshot {
  certificates: {
    serial: string
    kind: string
    status: string
    renewed_from: string | null
    revoked_at: number | null
  }[]
  caCertificates: { serial: string; kind: string }[]
  entries: { id: string }[]
  joinTokens: { id: string; used_at: number | null; used_by: string | null }[]
  families: {
    id: string
    cert_serial: string
    status: string
    revoked_at: number | null
    revoked_reason: string | null
  }[]
  refreshTokens: { id: string; family_id: string; issued_at: number; used_at: number | null }[]
  accessTokens: {
    jti: string
    family_id: string | null
    cert_serial: string
    issued_at: number
    expires_at: number
    revoked_at: number | null
  }[]
  signingKeys: { kid: string }[]
  compromisedKeys: { spki_sha256: string }[]
  audit: Audit[]
}

export function snapshot(db: DbInspector): Promise<Snapshot> {
  return db.consistent((q) => read(q))
}

async function read(q: Parameters<Parameters<DbInspector['consistent']>[0]>[0]): Promise<Snapshot> {
  const audit = await q<Omit<Audit, 'details'> & { details: unknown }>(
    'SELECT id, actor, action, subject, details FROM audit_events ORDER BY id',
  )
  return {
    certificates: await q(
      'SELECT serial, kind, status, renewed_from, revoked_at FROM certificates ORDER BY id',
    ),
    caCertificates: await q('SELECT serial, kind FROM ca_certificates'),
    entries: await q('SELECT id FROM entries'),
    joinTokens: await q('SELECT id, used_at, used_by FROM join_tokens'),
    families: await q(
      'SELECT id, cert_serial, status, revoked_at, revoked_reason FROM token_families',
    ),
    refreshTokens: await q('SELECT id, family_id, issued_at, used_at FROM refresh_tokens'),
    accessTokens: await q(
      'SELECT jti, family_id, cert_serial, issued_at, expires_at, revoked_at FROM access_tokens',
    ),
    signingKeys: await q('SELECT kid FROM signing_keys'),
    compromisedKeys: await q('SELECT spki_sha256 FROM compromised_keys'),
    audit: audit.map((a) => ({
      ...a,
      details:
        typeof a.details === 'string'
          ? (JSON.parse(a.details) as Record<string, unknown>)
          : ((a.details ?? {}) as Record<string, unknown>),
    })),
  }
}

function countBy<T>(items: readonly T[], key: (t: T) => string | null | undefined) {
  const m = new Map<string, number>()
  for (const i of items) {
    const k = key(i)
    if (k !== null && k !== undefined) m.set(k, (m.get(k) ?? 0) + 1)
  }
  return m
}

/** Each of `states` has exactly one event of `events`, and each event names one of `states`. */
function oneToOne(
  what: string,
  states: readonly string[],
  events: readonly Audit[],
  key: (a: Audit) => string | null | undefined,
): string[] {
  const out: string[] = []
  const counts = countBy(events, key)
  const known = new Set(states)
  for (const s of states) {
    const n = counts.get(s) ?? 0
    if (n !== 1) out.push(`${what} ${s}: ${n} audit events, expected 1`)
  }
  for (const [k, n] of counts)
    if (!known.has(k))
      out.push(`${what}: ${n} audit event(s) for ${k}, which is not in the database`)
  return out
}

const byAction = (s: Snapshot, ...actions: string[]) =>
  s.audit.filter((a) => actions.includes(a.action))

/** Certificates, CA certificates, revocations, compromised keys, entries, join tokens, keys. */
export function certificateAudit(s: Snapshot): string[] {
  const certs = (pred: (c: Snapshot['certificates'][number]) => boolean) =>
    s.certificates.filter(pred).map((c) => c.serial)
  const subject = (a: Audit) => a.subject
  const used = s.joinTokens.filter((t) => t.used_at !== null)
  const enrolled = new Set(certs((c) => c.kind === 'workload' && c.renewed_from === null))
  const out = [
    ...oneToOne(
      'CA certificate',
      s.caCertificates.map((c) => c.serial),
      byAction(s, 'ca.create_root', 'ca.create_intermediate'),
      subject,
    ),
    ...oneToOne('enrolled certificate', [...enrolled], byAction(s, 'certificate.enroll'), subject),
    ...oneToOne(
      'renewed certificate',
      certs((c) => c.kind === 'workload' && c.renewed_from !== null),
      byAction(s, 'certificate.renew'),
      subject,
    ),
    ...oneToOne(
      'admin certificate',
      certs((c) => c.kind === 'admin'),
      byAction(s, 'certificate.issue_admin'),
      subject,
    ),
    ...oneToOne(
      'server certificate',
      certs((c) => c.kind === 'server'),
      byAction(s, 'certificate.issue_server'),
      subject,
    ),
    ...oneToOne(
      'revoked certificate',
      certs((c) => c.status === 'revoked'),
      byAction(s, 'certificate.revoke'),
      subject,
    ),
    ...oneToOne(
      'entry',
      s.entries.map((e) => e.id),
      byAction(s, 'entry.create'),
      (a) => a.details.entry_id,
    ),
    ...oneToOne(
      'join token',
      s.joinTokens.map((t) => t.id),
      byAction(s, 'join_token.create'),
      (a) => a.details.join_token_id,
    ),
    ...oneToOne(
      'signing key',
      s.signingKeys.map((k) => k.kid),
      byAction(s, 'signing_key.rotate', 'signing_key.rotate_now'),
      subject,
    ),
    // An enrolment spends its join token in the same transaction: one used token per enrolment.
    ...oneToOne(
      'enrolment',
      [...enrolled],
      used.map((t) => ({ subject: t.used_by }) as Audit),
      subject,
    ),
  ]
  if (byAction(s, 'key.compromised').length !== s.compromisedKeys.length)
    out.push(
      `${s.compromisedKeys.length} compromised keys, ${byAction(s, 'key.compromised').length} key.compromised events`,
    )
  for (const e of byAction(s, 'certificate.enroll')) {
    const token = used.find((t) => t.used_by === e.subject)
    if (token && e.actor !== `join-token:${token.id}`)
      out.push(
        `enrolment ${e.subject}: audited for ${e.actor}, but join token ${token.id} was spent`,
      )
  }
  return out
}

/** Token families: issued, rotated and ended exactly as their audit events say; none half-rotated. */
export function familyAudit(s: Snapshot): string[] {
  const out = oneToOne(
    'token family',
    s.families.map((f) => f.id),
    byAction(s, 'token.issue'),
    (a) => a.details.family_id,
  )
  const refreshes = countBy(byAction(s, 'token.refresh'), (a) => a.details.family_id)
  const refreshTokens = groupBy(s.refreshTokens, (r) => r.family_id)
  const accessTokens = groupBy(s.accessTokens, (a) => a.family_id ?? '')
  const revokedCerts = new Set(
    s.certificates.filter((c) => c.status === 'revoked').map((c) => c.serial),
  )
  for (const f of s.families) {
    const rts = refreshTokens.get(f.id) ?? []
    const ats = accessTokens.get(f.id) ?? []
    const used = rts.filter((r) => r.used_at !== null)
    const n = refreshes.get(f.id) ?? 0
    if (used.length !== n)
      out.push(`family ${f.id}: ${used.length} used refresh tokens, ${n} token.refresh events`)
    if (rts.length !== n + 1)
      out.push(`family ${f.id}: ${rts.length} refresh tokens after ${n} refreshes`)
    if (ats.length !== n + 1)
      out.push(`family ${f.id}: ${ats.length} access tokens after ${n} refreshes`)
    // Each grant or refresh writes its refresh and access token in one transaction, at one time.
    const times = (xs: { issued_at: number }[]) => xs.map((x) => x.issued_at).sort((a, b) => a - b)
    if (JSON.stringify(times(rts)) !== JSON.stringify(times(ats)))
      out.push(`family ${f.id}: refresh and access tokens were not issued in pairs`)
    const latest = [...ats].sort((a, b) => b.issued_at - a.issued_at)[0]
    if (latest && latest.cert_serial !== f.cert_serial)
      out.push(
        `family ${f.id}: bound to ${f.cert_serial}, its latest access token to ${latest.cert_serial}`,
      )
    const unused = rts.filter((r) => r.used_at === null)
    if (f.status === 'active') {
      const newest = [...rts].sort((a, b) => b.issued_at - a.issued_at)[0]
      if (unused.length !== 1 || unused[0] !== newest)
        out.push(
          `family ${f.id}: active with ${unused.length} unused refresh tokens (half-rotated)`,
        )
      if (revokedCerts.has(f.cert_serial))
        out.push(`family ${f.id}: active, bound to revoked certificate ${f.cert_serial}`)
    } else {
      for (const a of ats)
        if (a.revoked_at === null && a.expires_at > f.revoked_at!)
          out.push(`family ${f.id}: revoked, but access token ${a.jti} is not`)
    }
  }
  out.push(...familyEndings(s))
  for (const a of s.accessTokens)
    if (revokedCerts.has(a.cert_serial) && a.revoked_at === null) {
      const cert = s.certificates.find((c) => c.serial === a.cert_serial)!
      if (a.expires_at > cert.revoked_at!)
        out.push(`access token ${a.jti}: bound to revoked ${a.cert_serial}, still active`)
    }
  for (const e of byAction(s, 'token.refresh', 'token.revoke')) {
    const at = s.accessTokens.find((a) => a.jti === e.details.jti)
    if (!at)
      out.push(`${e.action} event ${e.id}: access token ${e.details.jti} is not in the database`)
    else if (e.action === 'token.revoke' && at.revoked_at === null)
      out.push(`token.revoke event ${e.id}: access token ${at.jti} is not revoked`)
  }
  return out
}

/** Every ended family has the one event that ended it, and no event ends a live family. */
function familyEndings(s: Snapshot): string[] {
  const ended = (reason: string) =>
    s.families.filter((f) => f.status === 'revoked' && f.revoked_reason === reason).map((f) => f.id)
  const familyId = (a: Audit) => a.details.family_id
  const out = [
    ...oneToOne(
      'family ended by reuse',
      ended('refresh_token_reuse'),
      byAction(s, 'token.family.reuse_detected'),
      familyId,
    ),
    ...oneToOne(
      'family revoked by its client',
      ended('client_revoked'),
      byAction(s, 'token.family.revoke'),
      familyId,
    ),
  ]
  for (const cause of ['certificate_revoked', 'entry_disabled']) {
    const cascades = byAction(s, 'token.family.revoke_cascade').filter(
      (a) => a.details.cause === cause,
    )
    const n = cascades.reduce((sum, a) => sum + Number(a.details.families ?? 0), 0)
    if (n !== ended(cause).length)
      out.push(`${ended(cause).length} families ended by ${cause}, cascade events count ${n}`)
  }
  return out
}

function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>()
  for (const i of items) {
    const k = key(i)
    const list = m.get(k)
    if (list) list.push(i)
    else m.set(k, [i])
  }
  return m
}

/** Every check above, plus the backend's own integrity checker. */
export async function databaseInvariants(db: DbInspector): Promise<string[]> {
  const s = await snapshot(db)
  return [...(await db.integrity()), ...certificateAudit(s), ...familyAudit(s)]
}
