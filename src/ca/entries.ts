import { randomUUID } from 'node:crypto'
import type { Clock } from '../clock.js'
import type { Config } from '../config/load.js'
import { formatDuration } from '../config/duration.js'
import { newSecretToken } from '../crypto/secret-token.js'
import type { Store } from '../db/port.js'
import type { EntryPatch, EntryRecord, OidcRule, Page, TtlCap } from '../db/types.js'
import { CAError, isCAError } from '../errors.js'
import { claimsProblem, ruleView } from '../federation/claims.js'
import { SCOPE_TOKEN } from '../identity/scope.js'
import { spiffeIdProblem } from '../identity/spiffe-id.js'

const MAX_DNS_NAMES = 100
/** The longest renewal after expiry an entry may allow (CONTRACT "Lineages"). */
const MAX_RENEW_AFTER_EXPIRY_MS = 24 * 3_600_000
const DNS_NAME =
  /^(?=.{1,253}$)(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/

export interface EntryView {
  readonly id: string
  readonly spiffe_id: string
  readonly dns_names: readonly string[]
  readonly ttl: string | null
  readonly scopes: readonly string[] | null
  readonly subject_cn: string | null
  readonly renew_after_expiry: string | null
  readonly oidc: { issuer: string; claims: Record<string, string> } | null
  readonly enabled: boolean
  readonly created_at: string
  readonly updated_at: string
}

export function entryView(e: EntryRecord): EntryView {
  return {
    id: e.id,
    spiffe_id: e.spiffeId,
    dns_names: e.dnsNames,
    ttl: e.maxTtl?.text ?? null,
    scopes: e.scopes,
    subject_cn: e.subjectCn ?? null,
    renew_after_expiry: e.renewAfterExpiry?.text ?? null,
    oidc: e.oidc === null ? null : ruleView(e.oidc),
    enabled: e.enabled,
    created_at: new Date(e.createdAt).toISOString(),
    updated_at: new Date(e.updatedAt).toISOString(),
  }
}

/** A new entry as the admin asked for it (shapes checked at the edge). */
export interface EntryInput {
  readonly spiffeId: string
  readonly dnsNames?: readonly string[]
  readonly ttl?: TtlCap
  readonly scopes?: readonly string[] | null
  readonly subjectCn?: string
  readonly renewAfterExpiry?: TtlCap | null
  readonly oidc?: OidcRule | null
}

/** A change to an entry; absent fields stay, `null` clears a cap, scope pin or OIDC rule. */
export interface EntryUpdate {
  readonly enabled?: boolean
  readonly dnsNames?: readonly string[]
  readonly ttl?: TtlCap | null
  readonly scopes?: readonly string[] | null
  readonly subjectCn?: string | null
  readonly renewAfterExpiry?: TtlCap | null
  readonly oidc?: OidcRule | null
}

/** Registration entries and their join tokens (admin API). */
export class EntryService {
  constructor(private readonly deps: { config: Config; store: Store; clock: Clock }) {}

  async create(input: EntryInput, actor: string): Promise<EntryRecord> {
    const { config, store, clock } = this.deps
    const { spiffeId } = input
    const problem = spiffeIdProblem(spiffeId, config.trustDomain)
    if (problem)
      throw new CAError(
        'ERR_BAD_REQUEST',
        `"spiffe_id" ${JSON.stringify(spiffeId.slice(0, 200))} is invalid: ${problem}`,
      )
    if (config.admin.spiffeIds.includes(spiffeId)) {
      throw new CAError(
        'ERR_BAD_REQUEST',
        `"spiffe_id" ${spiffeId} is an admin identity; admin credentials come from \`certbound admin-credential\``,
      )
    }
    const now = clock.now().getTime()
    const entry: EntryRecord = {
      id: randomUUID(),
      spiffeId,
      dnsNames: checkDnsNames(input.dnsNames) ?? [],
      maxTtl: checkEntryTtl(input.ttl, config) ?? null,
      scopes: checkScopes(input.scopes) ?? null,
      subjectCn: input.subjectCn ?? null,
      renewAfterExpiry: checkRenewAfterExpiry(input.renewAfterExpiry) ?? null,
      oidc: checkOidc(input.oidc ?? undefined, config) ?? null,
      enabled: true,
      createdAt: now,
      updatedAt: now,
    }
    const created = store.entries.create(entry, {
      actor,
      action: 'entry.create',
      subject: spiffeId,
      details: {
        entry_id: entry.id,
        dns_names: entry.dnsNames,
        max_ttl: entry.maxTtl?.text ?? null,
        scopes: entry.scopes,
        renew_after_expiry: entry.renewAfterExpiry?.text ?? null,
        oidc: entry.oidc,
      },
    })
    return created.catch((e: unknown) => {
      if (isCAError(e, 'ERR_STORAGE_CONFLICT'))
        throw new CAError('ERR_CONFLICT', `an entry for ${spiffeId} already exists`)
      throw e
    })
  }

  async get(id: string): Promise<EntryRecord> {
    const entry = await this.deps.store.entries.get(id)
    if (!entry) throw new CAError('ERR_NOT_FOUND', `no entry with id ${id}`)
    return entry
  }

  list(cursor: string | undefined, limit: number): Promise<Page<EntryRecord>> {
    return this.deps.store.entries.list({ cursor, limit })
  }

  async update(id: string, update: EntryUpdate, actor: string): Promise<EntryRecord> {
    const patch: EntryPatch = {
      enabled: update.enabled,
      dnsNames: checkDnsNames(update.dnsNames),
      maxTtl: update.ttl === null ? null : checkEntryTtl(update.ttl, this.deps.config),
      scopes: checkScopes(update.scopes),
      subjectCn: update.subjectCn,
      renewAfterExpiry: checkRenewAfterExpiry(update.renewAfterExpiry),
      oidc: update.oidc === null ? null : checkOidc(update.oidc, this.deps.config),
    }
    // Audit subjects are SPIFFE IDs throughout, so one identity's history is one query.
    const { spiffeId } = await this.get(id)
    const entry = await this.deps.store.entries.update(id, patch, this.deps.clock.now().getTime(), {
      actor,
      action: update.enabled === false ? 'entry.disable' : 'entry.update',
      subject: spiffeId,
      details: {
        entry_id: id,
        ...(patch.enabled !== undefined && { enabled: patch.enabled }),
        ...(patch.dnsNames !== undefined && { dns_names: patch.dnsNames }),
        ...(patch.maxTtl !== undefined && { ttl: patch.maxTtl?.text ?? null }),
        ...(patch.scopes !== undefined && { scopes: patch.scopes }),
        ...(patch.subjectCn !== undefined && { subject_cn: patch.subjectCn }),
        ...(patch.renewAfterExpiry !== undefined && {
          renew_after_expiry: patch.renewAfterExpiry?.text ?? null,
        }),
        ...(patch.oidc !== undefined && { oidc: patch.oidc }),
      },
    })
    if (!entry) throw new CAError('ERR_NOT_FOUND', `no entry with id ${id}`)
    return entry
  }

  /** A one-time join token: returned once, stored as a hash. */
  async createJoinToken(
    entryId: string,
    ttl: TtlCap | undefined,
    actor: string,
  ): Promise<{ token: string; expiresAt: number }> {
    const { config, store, clock } = this.deps
    const entry = await this.get(entryId)
    if (!entry.enabled)
      throw new CAError('ERR_BAD_REQUEST', `the entry for ${entry.spiffeId} is disabled`)
    const ttlMs = ttl?.ms ?? config.enrollment.joinTokenTtlMs
    if (ttlMs > config.enrollment.maxJoinTokenTtlMs) {
      throw new CAError(
        'ERR_TTL_TOO_LONG',
        `"ttl" is over the maximum of ${formatDuration(config.enrollment.maxJoinTokenTtlMs)}`,
      )
    }
    const now = clock.now().getTime()
    const secret = newSecretToken()
    const expiresAt = now + ttlMs
    await store.entries.createJoinToken(
      { id: secret.id, tokenHash: secret.hash, entryId, expiresAt },
      now,
      {
        actor,
        action: 'join_token.create',
        subject: entry.spiffeId,
        details: {
          entry_id: entryId,
          join_token_id: secret.id,
          expires_at: new Date(expiresAt).toISOString(),
        },
      },
    )
    return { token: secret.token, expiresAt }
  }
}

function checkDnsNames(value: readonly string[] | undefined): string[] | undefined {
  if (value === undefined) return undefined
  if (value.length > MAX_DNS_NAMES) {
    throw new CAError(
      'ERR_BAD_REQUEST',
      `"dns_names" must be an array of at most ${MAX_DNS_NAMES} DNS names`,
    )
  }
  return [
    ...new Set(
      value.map((n) => {
        const name = n.toLowerCase()
        if (!DNS_NAME.test(name))
          throw new CAError(
            'ERR_BAD_REQUEST',
            `"dns_names": ${JSON.stringify(n)} is not a DNS name`,
          )
        return name
      }),
    ),
  ]
}

/** `scopes`: null (any scope) or an array of RFC 6749 scope tokens the entry may be granted. */
function checkScopes(value: readonly string[] | null | undefined): string[] | null | undefined {
  if (value === undefined || value === null) return value as null | undefined
  if (value.length > 100 || !value.every((s) => SCOPE_TOKEN.test(s))) {
    throw new CAError(
      'ERR_BAD_REQUEST',
      '"scopes" must be null or an array of at most 100 scope tokens (RFC 6749 §3.3)',
    )
  }
  return [...new Set(value as string[])]
}

/** `renew_after_expiry`: null (off) or a grace of at most 24h after a certificate's notAfter. */
function checkRenewAfterExpiry(value: TtlCap | null | undefined): TtlCap | null | undefined {
  if (value === undefined || value === null) return value
  if (value.ms > MAX_RENEW_AFTER_EXPIRY_MS) {
    throw new CAError('ERR_BAD_REQUEST', '"renew_after_expiry" must be at most 24h')
  }
  return value
}

/** An `oidc` rule: a configured issuer and claims that pin something (src/federation/claims.ts). */
function checkOidc(value: OidcRule | undefined, config: Config): OidcRule | undefined {
  if (value === undefined) return undefined
  const names = config.federation.oidcIssuers.map((i) => i.name)
  if (!names.includes(value.issuer)) {
    const known = names.length ? `one of ${names.join(', ')}` : 'none are configured'
    throw new CAError(
      'ERR_BAD_REQUEST',
      `"oidc.issuer" ${JSON.stringify(value.issuer.slice(0, 64))} is not in federation.oidc_issuers (${known})`,
    )
  }
  const problem = claimsProblem(value.claims)
  if (problem) throw new CAError('ERR_BAD_REQUEST', problem)
  return { issuer: value.issuer, claims: { ...value.claims } }
}

function checkEntryTtl(value: TtlCap | undefined, config: Config): TtlCap | undefined {
  if (value === undefined) return undefined
  if (value.ms > config.certificates.maxTtlMs) {
    throw new CAError(
      'ERR_TTL_TOO_LONG',
      `"ttl" is over certificates.max_ttl (${formatDuration(config.certificates.maxTtlMs)})`,
    )
  }
  return value
}
