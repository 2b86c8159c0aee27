import { decodeJwt } from 'jose'
import type { Config, OidcIssuerConfig } from '../config/load.js'
import { oidcRefusal } from './errors.js'
import { IssuerKeys, type KeysLog } from './issuer-keys.js'
import { verifyIdentityToken, type VerifiedIdentityToken } from './verify.js'

/**
 * The configured OIDC issuers (`federation.oidc_issuers`) and their cached keys: verifies an
 * identity token for the issuer an entry names. One per process; its caches hold only what the
 * issuers publish, never a decision of ours (the replay store is in the database).
 */
export class OidcFederation {
  readonly #issuers = new Map<string, IssuerKeys>()
  readonly #maxTokenAgeMs: number

  constructor(config: Config, log: KeysLog, now: () => number = Date.now) {
    const { oidcIssuers, fetchTimeoutMs, maxTokenAgeMs } = config.federation
    for (const issuer of oidcIssuers) {
      this.#issuers.set(issuer.name, new IssuerKeys(issuer, fetchTimeoutMs, log, now))
    }
    this.#maxTokenAgeMs = maxTokenAgeMs
  }

  /** The issuer configured under `name`, if any. */
  issuer(name: string): OidcIssuerConfig | undefined {
    return this.#issuers.get(name)?.config
  }

  /** The name of the first configured issuer whose `issuer` is the token's (unverified) `iss`. */
  nameForToken(token: string): string | undefined {
    let iss: unknown
    try {
      iss = decodeJwt(token).iss
    } catch {
      return undefined
    }
    return [...this.#issuers.values()].find((k) => k.config.issuer === iss)?.config.name
  }

  /** Every check of the token for the issuer named `name`; throws the failed one's refusal. */
  async verify(
    token: string,
    name: string,
    now: Date,
  ): Promise<{ issuer: OidcIssuerConfig; token: VerifiedIdentityToken }> {
    const keys = this.#issuers.get(name)
    if (keys === undefined) {
      throw oidcRefusal(
        'issuer',
        `the entry names issuer "${name.slice(0, 64)}", which federation.oidc_issuers does not configure`,
      )
    }
    const verified = await verifyIdentityToken(token, keys.config, keys, {
      now,
      maxTokenAgeMs: this.#maxTokenAgeMs,
    })
    return { issuer: keys.config, token: verified }
  }

  async close(): Promise<void> {
    await Promise.all([...this.#issuers.values()].map((k) => k.close()))
  }
}
