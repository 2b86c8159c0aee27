import type { Logger } from 'pino'

import { toCredential } from './credential.js'
import type { Credential } from './credential.js'
import { AgentFailure } from './errors.js'
import type { AgentOptions } from './options.js'
import { DATA_LINK, readCurrentGeneration } from './out-dir.js'
import type { GenerationFiles } from './out-dir.js'
import type { AccessToken } from './token.js'
import type { AgentState } from './state.js'

/** What a previous run left in the output directory. */
export interface Existing {
  readonly cred: Credential
  /** False when the state does not say when this certificate was received. */
  readonly receiptKnown: boolean
  readonly token: AccessToken | undefined
  readonly refreshToken: string | undefined
  readonly bundlePem: string | undefined
  /** The CRLs published before (`crls.pem`), kept until fresh ones are fetched. */
  readonly crlsPem: string | undefined
  /** The credential is a renewal or enrolment not published yet (see `AgentState.pending`). */
  readonly pending?: boolean
}

function receivedAt(state: AgentState, thumbprint: string): number | undefined {
  if (state.certificate?.thumbprint !== thumbprint) return undefined
  const at = Date.parse(state.certificate.received_at)
  return Number.isFinite(at) ? at : undefined
}

function tokenOf(state: AgentState, json: string | undefined, cred: Credential) {
  if (json === undefined || state.token?.thumbprint !== cred.thumbprint) return undefined
  try {
    const doc = JSON.parse(json) as Record<string, unknown>
    const expiresAt = Date.parse(String(doc.expires_at))
    const at = Date.parse(state.token.received_at)
    if (typeof doc.access_token !== 'string' || !Number.isFinite(expiresAt + at)) return undefined
    if (doc['x5t#S256'] !== cred.thumbprint) return undefined
    return { accessToken: doc.access_token, expiresAt, receivedAt: at, thumbprint: cred.thumbprint }
  } catch {
    return undefined
  }
}

/**
 * A new credential the state kept before its first use, unless it is the published one
 * already. It wins over the published generation: that one may be retired by now.
 */
function pendingOf(state: AgentState, options: AgentOptions, published: string | undefined) {
  const p = state.pending
  if (typeof p !== 'object' || p === null) return undefined
  try {
    const at = Date.parse(p.received_at)
    const pems = { certPem: p.cert_pem, chainPem: p.chain_pem, keyPem: p.key_pem }
    const cred = toCredential(pems, options.spiffeId, Number.isFinite(at) ? at : 0)
    return cred.thumbprint === published ? undefined : cred
  } catch {
    return undefined
  }
}

/** Goes on with the credential the state kept before it was published. */
function goOnWith(
  pending: Credential,
  state: AgentState,
  files: GenerationFiles,
  log: Logger,
  publishedSerial?: string,
): Existing {
  log.info(
    { serial: pending.serial, published_serial: publishedSerial ?? null },
    'going on with the certificate obtained before the last stop (not published yet)',
  )
  return {
    cred: pending,
    receiptKnown: pending.receivedAt > 0,
    token: undefined,
    refreshToken: typeof state.refresh_token === 'string' ? state.refresh_token : undefined,
    bundlePem: files['bundle.pem'],
    crlsPem: files['crls.pem'],
    pending: true,
  }
}

/**
 * Reads the current generation and the state. Undefined when there is neither a generation nor
 * a credential kept in the state; an `AgentFailure` (usage) when the generation holds a
 * certificate for another identity or one that does not match its key. An expired certificate
 * is returned: the caller decides.
 */
export async function loadExisting(
  options: AgentOptions,
  log: Logger,
  state: AgentState,
): Promise<Existing | undefined> {
  const dir = options.outDir
  const generation = await readCurrentGeneration(dir)
  const files = generation?.files ?? {}
  const certPem = files['cert.pem']
  const keyPem = files['key.pem']
  if (certPem === undefined || keyPem === undefined) {
    if (generation !== undefined) {
      log.warn(`${dir}/${DATA_LINK} has no cert.pem or key.pem; ignoring it`)
    }
    // Stopped after its first enrolment, before anything was published.
    const pending = pendingOf(state, options, undefined)
    return pending && goOnWith(pending, state, {}, log)
  }
  let cred: Credential
  try {
    cred = toCredential(
      { certPem, keyPem, chainPem: files['chain.pem'] ?? certPem },
      options.spiffeId,
      0,
    )
  } catch (e) {
    throw new AgentFailure(
      'usage',
      `${dir} holds a certificate that cannot be used: ${(e as Error).message}`,
    )
  }
  const pending = pendingOf(state, options, cred.thumbprint)
  if (pending !== undefined) return goOnWith(pending, state, files, log, cred.serial)
  const at = receivedAt(state, cred.thumbprint)
  if (at === undefined) {
    log.warn(
      { serial: cred.serial },
      'the state does not say when this certificate was received: renewing it now',
    )
  }
  cred = { ...cred, receivedAt: at ?? cred.notBefore }
  log.info(
    { serial: cred.serial, not_after: new Date(cred.notAfter).toISOString() },
    `using the certificate in ${dir}`,
  )
  return {
    cred,
    receiptKnown: at !== undefined,
    token: tokenOf(state, files['token.json'], cred),
    refreshToken: typeof state.refresh_token === 'string' ? state.refresh_token : undefined,
    bundlePem: files['bundle.pem'],
    crlsPem: files['crls.pem'],
  }
}
