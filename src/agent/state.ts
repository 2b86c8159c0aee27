import { constants } from 'node:fs'
import { mkdir, open, rename } from 'node:fs/promises'
import { join } from 'node:path'

import type { Credential } from './credential.js'
import { AgentFailure } from './errors.js'
import { createFile, ensureOwnDirectory, ownDirectory, syncDir, tempName } from './safe-fs.js'
import type { AccessToken } from './token.js'

/**
 * What the agent remembers between runs, in `DIR/..state/agent.json` (0600, directory 0700).
 * It holds the refresh token, a secret, so it never goes into a generation that readers see.
 */
export interface AgentState {
  /** When the current certificate was received: renewal is scheduled from here, not notBefore. */
  readonly certificate?: {
    readonly thumbprint: string
    readonly serial: string
    readonly received_at: string
  }
  /** The last access token: the certificate it was issued with, when it came, when it ends. */
  readonly token?: {
    readonly thumbprint: string
    readonly received_at: string
    readonly expires_at: string
  }
  /**
   * The current refresh token. Removed (and the state saved) before it is sent: a refresh
   * token is presented at most once (LIFECYCLE invariant 4), whatever happens to the request.
   */
  readonly refresh_token?: string
  /**
   * A new certificate (and its key) not published yet, renewed or enrolled: saved before its
   * first use, so a restart goes on with it and never falls back to the generation it retires
   * (CONTRACT "Lineages": a retired generation asking to renew is taken for a clone), nor
   * loses the certificate a spent join or OIDC token paid for.
   */
  readonly pending?: {
    readonly cert_pem: string
    readonly chain_pem: string
    readonly key_pem: string
    readonly received_at: string
  }
  /**
   * The highest CRL number seen per issuing CA (SHA-256 fingerprint → decimal): an older CRL
   * is a replay (by a server holding a stolen, revoked server key) and is refused.
   */
  readonly crl_numbers?: Readonly<Record<string, string>>
}

export const STATE_DIR = '..state'
const STATE_FILE = 'agent.json'
const SECRETS = 'the refresh token, a pending key and CRL numbers'

/**
 * Reads the state; a missing or unreadable file is an empty state (reported via `onProblem`).
 * A `..state` that is a link, not a directory, or another user's is refused (`AgentFailure`):
 * someone else could then read the refresh token or plant a state.
 */
export async function loadState(
  dir: string,
  onProblem: (reason: string) => void,
): Promise<AgentState> {
  let text: string
  try {
    if (!(await ownDirectory(join(dir, STATE_DIR), SECRETS))) return {}
    const handle = await open(
      join(dir, STATE_DIR, STATE_FILE),
      constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0),
    )
    try {
      text = await handle.readFile('utf8')
    } finally {
      await handle.close()
    }
  } catch (e) {
    if (e instanceof AgentFailure) throw e
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') onProblem(`cannot read the state: ${e}`)
    return {}
  }
  try {
    const state = JSON.parse(text) as unknown
    if (state !== null && typeof state === 'object' && !Array.isArray(state)) {
      return state as AgentState
    }
  } catch {
    // fall through
  }
  onProblem('the state file is not valid JSON; starting without it')
  return {}
}

/**
 * Writes the state atomically: a 0600 file under a random name, fsync, rename, fsync the
 * directory, in `..state` (0700, checked to be our own directory every time).
 */
export async function saveState(dir: string, state: AgentState): Promise<void> {
  const stateDir = join(dir, STATE_DIR)
  await mkdir(dir, { recursive: true, mode: 0o755 }) // --out itself may be a shared volume
  await ensureOwnDirectory(stateDir, 0o700, SECRETS)
  const tmp = join(stateDir, tempName(STATE_FILE))
  await createFile(tmp, `${JSON.stringify(state, null, 2)}\n`, 0o600)
  await rename(tmp, join(stateDir, STATE_FILE))
  await syncDir(stateDir)
}

const iso = (ms: number) => new Date(ms).toISOString()

/** The state to save for the agent's current certificate, token and refresh token. */
export function stateOf(
  cred: Credential | undefined,
  token: AccessToken | undefined,
  refreshToken: string | undefined,
  crlNumbers: ReadonlyMap<string, bigint> = new Map(),
  pending?: Credential,
): AgentState {
  return {
    ...(cred && {
      certificate: {
        thumbprint: cred.thumbprint,
        serial: cred.serial,
        received_at: iso(cred.receivedAt),
      },
    }),
    ...(token && {
      token: {
        thumbprint: token.thumbprint,
        received_at: iso(token.receivedAt),
        expires_at: iso(token.expiresAt),
      },
    }),
    ...(refreshToken !== undefined && { refresh_token: refreshToken }),
    ...(pending && {
      pending: {
        cert_pem: pending.certPem,
        chain_pem: pending.chainPem,
        key_pem: pending.keyPem,
        received_at: iso(pending.receivedAt),
      },
    }),
    ...(crlNumbers.size > 0 && {
      crl_numbers: Object.fromEntries([...crlNumbers].map(([k, n]) => [k, n.toString()])),
    }),
  }
}

/** The CRL numbers of a saved state (entries that are not decimal numbers are ignored). */
export function crlNumbersOf(state: AgentState): Map<string, bigint> {
  const out = new Map<string, bigint>()
  const saved = state.crl_numbers
  if (typeof saved !== 'object' || saved === null) return out
  for (const [k, v] of Object.entries(saved))
    if (/^\d{1,40}$/.test(String(v))) out.set(k, BigInt(v))
  return out
}
