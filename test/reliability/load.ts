import { generateKeyPairSync } from 'node:crypto'
import { buildCsr } from '../../src/x509/csr-builder.js'
import type { ApiClient, ApiResponse } from '../helpers/server.js'
import type { FamilyLedger, Ledger, Outcome } from './ledger.js'

/**
 * Workloads that enrol, renew, take and refresh tokens, and get revoked, against a server that
 * may die under any request. Every answer goes into the ledger; a request whose answer was lost
 * makes the workload let go of whatever that request could have changed, so that every later
 * request of a workload has one certain expected answer — and a refusal of one is a failure.
 */

/** The server to talk to now; waits while it is being restarted. */
export interface Target {
  get(): Promise<ApiClient>
}

interface Cred {
  certPem: string
  keyPem: string
  serial: string
}

interface LiveFamily {
  ledger: FamilyLedger
  refreshToken: string
  accessToken: string
}

interface Workload {
  spiffeId: string
  entryId?: string
  cred?: Cred
  families: LiveFamily[]
}

type CallOptions = Parameters<ApiClient['call']>[2]

function newKey(spiffeId: string | undefined) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const csr = buildCsr({ privateKey, publicKey, uris: spiffeId ? [spiffeId] : [] })
  return { csr, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string }
}

const jtiOf = (jwt: string): string =>
  JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()).jti

const idOf = (secret: string) => secret.slice(0, 16)

export class LoadActors {
  #stopped = false
  #n = 0
  readonly #running: Promise<void>[] = []

  constructor(
    private readonly target: Target,
    private readonly ledger: Ledger,
    private readonly prefix: string,
  ) {}

  start(actors: number): void {
    for (let i = 0; i < actors; i++) this.#running.push(this.#actor(i))
  }

  /** Lets every request in flight finish, then resolves. */
  async stop(): Promise<void> {
    this.#stopped = true
    await Promise.all(this.#running)
  }

  async #actor(i: number): Promise<void> {
    let w = this.#workload(i)
    while (!this.#stopped) {
      const s = await this.target.get()
      if (this.#stopped) return
      w = (await this.#step(s, w)) ?? this.#workload(i)
    }
  }

  #workload(i: number): Workload {
    return { spiffeId: `spiffe://example.org/${this.prefix}/${i}/${++this.#n}`, families: [] }
  }

  /** One request (the contract's answers only: a response or a lost one). */
  async #send(s: ApiClient, what: string, method: string, path: string, opts: CallOptions) {
    const { ledger } = this
    let r: ApiResponse | undefined
    let outcome: Outcome
    try {
      r = await s.call(method, path, opts)
      outcome = r.status < 300 ? 'ok' : r.status >= 500 ? 'unknown' : 'refused'
      if (r.status >= 500 && r.status !== 503)
        ledger.failures.push(`${what}: ${r.status} ${r.text.slice(0, 300)}`)
      // A live server answered: the workload's state was certain, so this had to succeed.
      if (outcome === 'refused')
        ledger.failures.push(`${what}: ${r.status} ${r.text.slice(0, 300)}`)
    } catch (e) {
      const code = (e as { code?: string }).code ?? (e as { cause?: { code?: string } }).cause?.code
      // Refused at connect: the request never reached a server.
      outcome = code === 'ECONNREFUSED' ? 'refused' : 'unknown'
    }
    ledger.counts[outcome]++
    return { outcome, r }
  }

  /** One step of a workload; undefined = start over with a new workload. */
  async #step(s: ApiClient, w: Workload): Promise<Workload | undefined> {
    if (w.entryId === undefined) return this.#createEntry(s, w)
    if (w.cred === undefined) return this.#enroll(s, w)
    const dice = Math.random()
    if (dice < 0.25) return this.#grant(s, w)
    if (dice < 0.5) return w.families.length ? this.#refresh(s, w) : this.#grant(s, w)
    if (dice < 0.65) return this.#renew(s, w)
    if (dice < 0.8) return w.families.length ? this.#introspect(s, w) : w
    if (dice < 0.88) return w.families.length ? this.#revokeFamily(s, w) : w
    if (dice < 0.95) return this.#revokeCertificate(s, w)
    return undefined
  }

  async #createEntry(s: ApiClient, w: Workload): Promise<Workload | undefined> {
    const { outcome, r } = await this.#send(s, 'create entry', 'POST', '/v1/entries', {
      as: s.admin,
      json: { spiffe_id: w.spiffeId },
    })
    if (outcome !== 'ok') return outcome === 'refused' && !r ? w : undefined
    this.ledger.entries.add(r!.body.id)
    return { ...w, entryId: r!.body.id }
  }

  async #enroll(s: ApiClient, w: Workload): Promise<Workload | undefined> {
    const jt = await this.#send(s, 'join token', 'POST', `/v1/entries/${w.entryId}/join-tokens`, {
      as: s.admin,
      json: {},
    })
    if (jt.outcome !== 'ok') return w
    const token = jt.r!.body.token as string
    this.ledger.joinTokens.add(idOf(token))
    const { csr, keyPem } = newKey(w.spiffeId)
    const { outcome, r } = await this.#send(s, 'enrol', 'POST', '/v1/enroll', {
      headers: { authorization: `Bearer ${token}` },
      json: { csr },
    })
    if (outcome === 'unknown') this.ledger.unansweredIssuance++
    if (outcome !== 'ok') return w
    const cred = { certPem: r!.body.chain, keyPem, serial: r!.body.serial }
    this.ledger.certs.set(cred.serial, { revoke: 'none' })
    return { ...w, cred }
  }

  async #grant(s: ApiClient, w: Workload): Promise<Workload> {
    const { outcome, r } = await this.#send(s, 'client_credentials', 'POST', '/oauth/token', {
      as: w.cred,
      form: { grant_type: 'client_credentials' },
    })
    if (outcome === 'unknown') this.ledger.unansweredGrants++
    if (outcome !== 'ok') return w
    const { access_token: at, refresh_token: rt } = r!.body
    this.ledger.accessTokens.set(jtiOf(at), w.cred!.serial)
    const ledger = this.ledger.family(idOf(rt), w.cred!.serial)
    return { ...w, families: [...w.families, { ledger, refreshToken: rt, accessToken: at }] }
  }

  async #refresh(s: ApiClient, w: Workload): Promise<Workload> {
    const f = w.families[Math.floor(Math.random() * w.families.length)]!
    const { outcome, r } = await this.#send(s, 'refresh', 'POST', '/oauth/token', {
      as: w.cred,
      form: { grant_type: 'refresh_token', refresh_token: f.refreshToken },
    })
    const old = this.ledger.refresh.get(idOf(f.refreshToken))!
    const others = w.families.filter((x) => x !== f)
    if (outcome === 'refused' && !r) return w
    if (outcome !== 'ok') {
      // Lost answer: the token may be spent and the family re-bound; never present it again.
      old.used = 'unknown'
      f.ledger.uncertain = true
      return { ...w, families: others }
    }
    const { access_token: at, refresh_token: rt } = r!.body
    old.used = 'yes'
    f.ledger.refreshIds.push(idOf(rt))
    f.ledger.boundSerial = w.cred!.serial
    this.ledger.refresh.set(idOf(rt), { family: f.ledger, used: 'no' })
    this.ledger.accessTokens.set(jtiOf(at), w.cred!.serial)
    return { ...w, families: [...others, { ...f, refreshToken: rt, accessToken: at }] }
  }

  async #renew(s: ApiClient, w: Workload): Promise<Workload> {
    const { csr, keyPem } = newKey(Math.random() < 0.5 ? w.spiffeId : undefined)
    const { outcome, r } = await this.#send(s, 'renew', 'POST', '/v1/renew', {
      as: w.cred,
      json: { csr },
    })
    if (outcome === 'unknown') this.ledger.unansweredIssuance++
    if (outcome !== 'ok') return w
    const cred = { certPem: r!.body.chain, keyPem, serial: r!.body.serial }
    this.ledger.certs.set(cred.serial, { revoke: 'none' })
    return { ...w, cred }
  }

  /** A token of a family nothing ended, introspected: it must be active (from any process). */
  async #introspect(s: ApiClient, w: Workload): Promise<Workload> {
    const f = w.families[Math.floor(Math.random() * w.families.length)]!
    const { outcome, r } = await this.#send(s, 'introspect', 'POST', '/oauth/introspect', {
      as: w.cred,
      form: { token: f.accessToken },
    })
    if (outcome === 'ok' && r!.body.active !== true)
      this.ledger.failures.push(`introspect: a live token answered ${r!.text}`)
    return w
  }

  async #revokeFamily(s: ApiClient, w: Workload): Promise<Workload> {
    const f = w.families[0]!
    const { outcome, r } = await this.#send(s, 'oauth revoke', 'POST', '/oauth/revoke', {
      as: w.cred,
      form: { token: f.refreshToken },
    })
    if (outcome === 'refused' && !r) return w
    f.ledger.revoked = outcome === 'ok' ? 'acked' : 'unknown'
    return { ...w, families: w.families.slice(1) }
  }

  async #revokeCertificate(s: ApiClient, w: Workload): Promise<Workload> {
    const serial = w.cred!.serial
    const { outcome, r } = await this.#send(
      s,
      'revoke',
      'POST',
      `/v1/certificates/${serial}/revoke`,
      {
        as: s.admin,
        json: { reason: 'superseded' },
      },
    )
    if (outcome === 'refused' && !r) return w
    this.ledger.certs.get(serial)!.revoke = outcome === 'ok' ? 'acked' : 'unknown'
    // Its families end with it; the workload enrols again under the same entry.
    return { ...w, cred: undefined, families: [] }
  }
}
