import type { DbInspector } from '../helpers/db-inspect.js'

/**
 * What the clients of a crash test were told, and what they could not know: a request whose
 * answer never came (the server died under it) may or may not have been committed. After the
 * crashes the database must hold everything acknowledged, exactly as acknowledged, and nothing
 * else beyond what those unanswered requests could have made.
 */
export type Outcome = 'ok' | 'refused' | 'unknown'
export type Revocation = 'none' | 'acked' | 'unknown'

export interface FamilyLedger {
  /** Refresh-token ids (the public prefix) in the order the client received them. */
  readonly refreshIds: string[]
  boundSerial: string
  revoked: Revocation
  /** A refresh of this family went unanswered: its current token and binding are unknown. */
  uncertain: boolean
}

export class Ledger {
  readonly certs = new Map<string, { revoke: Revocation }>()
  readonly entries = new Set<string>()
  readonly joinTokens = new Set<string>()
  readonly refresh = new Map<string, { family: FamilyLedger; used: 'no' | 'yes' | 'unknown' }>()
  readonly families: FamilyLedger[] = []
  readonly accessTokens = new Map<string, string>()
  /** Enrolments and renewals whose answer was lost: each may have made one certificate. */
  unansweredIssuance = 0
  /** client_credentials grants whose answer was lost: each may have started one family. */
  unansweredGrants = 0
  readonly counts: Record<Outcome, number> = { ok: 0, refused: 0, unknown: 0 }
  /** Server errors (≥ 500 other than 503) and refusals of requests that had to succeed. */
  readonly failures: string[] = []

  family(refreshId: string, boundSerial: string): FamilyLedger {
    const f: FamilyLedger = {
      refreshIds: [refreshId],
      boundSerial,
      revoked: 'none',
      uncertain: false,
    }
    this.families.push(f)
    this.refresh.set(refreshId, { family: f, used: 'no' })
    return f
  }

  /** Differences between this ledger and the database (empty when every promise was kept). */
  async problems(db: DbInspector): Promise<string[]> {
    return db.consistent(async (q) => {
      const out: string[] = []
      const certs = new Map(
        (
          await q<{ serial: string; status: string; kind: string }>(
            'SELECT serial, status, kind FROM certificates',
          )
        ).map((c) => [c.serial, c]),
      )
      for (const [serial, { revoke }] of this.certs) {
        const row = certs.get(serial)
        if (!row) out.push(`certificate ${serial} was delivered but is not in the database`)
        else if (revoke === 'acked' && row.status !== 'revoked')
          out.push(`certificate ${serial}: revocation acknowledged, status ${row.status}`)
        else if (revoke === 'none' && row.status !== 'valid')
          out.push(`certificate ${serial}: never revoked, status ${row.status}`)
      }
      const unknown = [...certs.values()].filter(
        (c) => c.kind === 'workload' && !this.certs.has(c.serial),
      )
      if (unknown.length > this.unansweredIssuance)
        out.push(
          `${unknown.length} workload certificates no client received, but only ${this.unansweredIssuance} issuance requests went unanswered`,
        )
      const entries = new Set((await q<{ id: string }>('SELECT id FROM entries')).map((e) => e.id))
      for (const id of this.entries)
        if (!entries.has(id)) out.push(`entry ${id} acknowledged, not in the database`)
      const tokens = new Set(
        (await q<{ id: string }>('SELECT id FROM join_tokens')).map((t) => t.id),
      )
      for (const id of this.joinTokens)
        if (!tokens.has(id)) out.push(`join token ${id} delivered, not in the database`)
      out.push(...(await this.#tokenProblems(q)))
      return out
    })
  }

  async #tokenProblems(
    q: Parameters<Parameters<DbInspector['consistent']>[0]>[0],
  ): Promise<string[]> {
    const out: string[] = []
    const rts = new Map(
      (
        await q<{ id: string; family_id: string; used_at: number | null }>(
          'SELECT id, family_id, used_at FROM refresh_tokens',
        )
      ).map((r) => [r.id, r]),
    )
    const families = new Map(
      (
        await q<{ id: string; status: string; cert_serial: string }>(
          'SELECT id, status, cert_serial FROM token_families',
        )
      ).map((f) => [f.id, f]),
    )
    const known = new Set<string>()
    for (const f of this.families) {
      const ids = new Set<string>()
      for (const rid of f.refreshIds) {
        const row = rts.get(rid)
        const used = this.refresh.get(rid)!.used
        if (!row) {
          out.push(`refresh token ${rid} was delivered but is not in the database`)
          continue
        }
        ids.add(row.family_id)
        if (used === 'yes' && row.used_at === null)
          out.push(`refresh token ${rid}: refreshed (acknowledged), still unused`)
        if (used === 'no' && row.used_at !== null && !f.uncertain)
          out.push(`refresh token ${rid}: never presented, marked used`)
      }
      if (ids.size !== 1) {
        out.push(
          `refresh tokens ${f.refreshIds.join(', ')} of one client family are in ${ids.size} families`,
        )
        continue
      }
      const row = families.get([...ids][0]!)!
      known.add(row.id)
      if (f.revoked === 'acked' && row.status !== 'revoked')
        out.push(`family ${row.id}: revocation acknowledged, ${row.status}`)
      const boundRevoke = this.certs.get(f.boundSerial)?.revoke
      if (f.revoked === 'none' && !f.uncertain && boundRevoke === 'none') {
        if (row.status !== 'active') out.push(`family ${row.id}: never ended, ${row.status}`)
        if (row.cert_serial !== f.boundSerial)
          out.push(
            `family ${row.id}: bound to ${row.cert_serial}, the client last refreshed with ${f.boundSerial}`,
          )
      }
      if (boundRevoke === 'acked' && row.status !== 'revoked' && !f.uncertain)
        out.push(
          `family ${row.id}: its certificate ${f.boundSerial} was revoked, the family is ${row.status}`,
        )
    }
    const strangers = [...families.keys()].filter((id) => !known.has(id))
    if (strangers.length > this.unansweredGrants)
      out.push(
        `${strangers.length} token families no client received, but only ${this.unansweredGrants} grants went unanswered`,
      )
    const ats = new Map(
      (
        await q<{ jti: string; cert_serial: string }>('SELECT jti, cert_serial FROM access_tokens')
      ).map((a) => [a.jti, a]),
    )
    for (const [jti, serial] of this.accessTokens) {
      const row = ats.get(jti)
      if (!row) out.push(`access token ${jti} was delivered but is not in the database`)
      else if (row.cert_serial !== serial)
        out.push(`access token ${jti}: bound to ${row.cert_serial}, presented with ${serial}`)
    }
    return out
  }
}
