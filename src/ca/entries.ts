import { randomUUID } from 'node:crypto'
import type { Clock } from '../clock.js'
import type { Config } from '../config/load.js'
import { formatDuration, parseDuration } from '../config/duration.js'
import { newSecretToken } from '../crypto/secret-token.js'
import type { EntryPatch } from '../db/entries.js'
import type { Store } from '../db/store.js'
import type { EntryRecord, Page, TtlCap } from '../db/types.js'
import { CAError } from '../errors.js'
import { SCOPE_TOKEN } from '../identity/scope.js'
import { spiffeIdProblem } from '../identity/spiffe-id.js'

const MAX_DNS_NAMES = 100
const DNS_NAME =
  /^(?=.{1,253}$)(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/

export interface EntryView {
  readonly id: string
  readonly spiffe_id: string
  readonly dns_names: readonly string[]
  readonly ttl: string | null
  readonly scopes: readonly string[] | null
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
    enabled: e.enabled,
    created_at: new Date(e.createdAt).toISOString(),
    updated_at: new Date(e.updatedAt).toISOString(),
  }
}

/** Registration entries and their join tokens (admin API). */
export class EntryService {
  constructor(private readonly deps: { config: Config; store: Store; clock: Clock }) {}

  async create(body: Record<string, unknown>, actor: string): Promise<EntryRecord> {
    allowOnly(body, ['spiffe_id', 'dns_names', 'ttl', 'scopes'])
    const { config, store, clock } = this.deps
    const spiffeId = body.spiffe_id
    if (typeof spiffeId !== 'string')
      throw new CAError('ERR_BAD_REQUEST', '"spiffe_id" is required (a string)')
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
      dnsNames: parseDnsNames(body.dns_names) ?? [],
      maxTtl: parseEntryTtl(body.ttl, config) ?? null,
      scopes: parseScopes(body.scopes) ?? null,
      enabled: true,
      createdAt: now,
      updatedAt: now,
    }
    return store.entries.create(entry, {
      actor,
      action: 'entry.create',
      subject: spiffeId,
      details: {
        entry_id: entry.id,
        dns_names: entry.dnsNames,
        max_ttl: entry.maxTtl?.text ?? null,
        scopes: entry.scopes,
      },
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

  async update(id: string, body: Record<string, unknown>, actor: string): Promise<EntryRecord> {
    allowOnly(body, ['enabled', 'dns_names', 'ttl', 'scopes'])
    if (body.enabled !== undefined && typeof body.enabled !== 'boolean') {
      throw new CAError('ERR_BAD_REQUEST', '"enabled" must be true or false')
    }
    const patch: EntryPatch = {
      enabled: body.enabled as boolean | undefined,
      dnsNames: parseDnsNames(body.dns_names),
      maxTtl: body.ttl === null ? null : parseEntryTtl(body.ttl, this.deps.config),
      scopes: parseScopes(body.scopes),
    }
    // Audit subjects are SPIFFE IDs throughout, so one identity's history is one query.
    const { spiffeId } = await this.get(id)
    const entry = await this.deps.store.entries.update(id, patch, this.deps.clock.now().getTime(), {
      actor,
      action: body.enabled === false ? 'entry.disable' : 'entry.update',
      subject: spiffeId,
      details: { entry_id: id, ...body },
    })
    if (!entry) throw new CAError('ERR_NOT_FOUND', `no entry with id ${id}`)
    return entry
  }

  /** A one-time join token: returned once, stored as a hash. */
  async createJoinToken(
    entryId: string,
    body: Record<string, unknown>,
    actor: string,
  ): Promise<{ token: string; expires_at: string }> {
    allowOnly(body, ['ttl'])
    const { config, store, clock } = this.deps
    const entry = await this.get(entryId)
    if (!entry.enabled)
      throw new CAError('ERR_BAD_REQUEST', `the entry for ${entry.spiffeId} is disabled`)
    let ttlMs = config.enrollment.joinTokenTtlMs
    if (body.ttl !== undefined) {
      const ms = typeof body.ttl === 'string' ? parseDuration(body.ttl) : undefined
      if (ms === undefined)
        throw new CAError('ERR_BAD_REQUEST', '"ttl" must be a duration string such as "15m"')
      if (ms > config.enrollment.maxJoinTokenTtlMs) {
        throw new CAError(
          'ERR_TTL_TOO_LONG',
          `"ttl" is over the maximum of ${formatDuration(config.enrollment.maxJoinTokenTtlMs)}`,
        )
      }
      ttlMs = ms
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
    return { token: secret.token, expires_at: new Date(expiresAt).toISOString() }
  }
}

function allowOnly(body: Record<string, unknown>, keys: readonly string[]): void {
  for (const k of Object.keys(body)) {
    if (!keys.includes(k))
      throw new CAError(
        'ERR_BAD_REQUEST',
        `unknown field "${k.slice(0, 64)}"; allowed: ${keys.join(', ')}`,
      )
  }
}

function parseDnsNames(value: unknown): string[] | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value) || value.length > MAX_DNS_NAMES) {
    throw new CAError(
      'ERR_BAD_REQUEST',
      `"dns_names" must be an array of at most ${MAX_DNS_NAMES} DNS names`,
    )
  }
  return [
    ...new Set(
      value.map((n) => {
        const name = typeof n === 'string' ? n.toLowerCase() : ''
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
function parseScopes(value: unknown): string[] | null | undefined {
  if (value === undefined || value === null) return value
  if (
    !Array.isArray(value) ||
    value.length > 100 ||
    !value.every((s) => typeof s === 'string' && SCOPE_TOKEN.test(s))
  ) {
    throw new CAError(
      'ERR_BAD_REQUEST',
      '"scopes" must be null or an array of at most 100 scope tokens (RFC 6749 §3.3)',
    )
  }
  return [...new Set(value as string[])]
}

function parseEntryTtl(value: unknown, config: Config): TtlCap | undefined {
  if (value === undefined) return undefined
  const ms = typeof value === 'string' ? parseDuration(value) : undefined
  if (ms === undefined)
    throw new CAError('ERR_BAD_REQUEST', '"ttl" must be a duration string such as "1h"')
  if (ms > config.certificates.maxTtlMs) {
    throw new CAError(
      'ERR_TTL_TOO_LONG',
      `"ttl" is over certificates.max_ttl (${formatDuration(config.certificates.maxTtlMs)})`,
    )
  }
  return { text: value as string, ms }
}
