import { constants } from 'node:fs'
import { chmod, mkdir, open, readFile, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'

import type { Credential } from './credential.js'
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
   * The highest CRL number seen per issuing CA (SHA-256 fingerprint → decimal): an older CRL
   * is a replay (by a server holding a stolen, revoked server key) and is refused.
   */
  readonly crl_numbers?: Readonly<Record<string, string>>
}

export const STATE_DIR = '..state'
const STATE_FILE = 'agent.json'

/** Reads the state; a missing or unreadable file is an empty state (reported via `onProblem`). */
export async function loadState(
  dir: string,
  onProblem: (reason: string) => void,
): Promise<AgentState> {
  let text: string
  try {
    text = await readFile(join(dir, STATE_DIR, STATE_FILE), 'utf8')
  } catch (e) {
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

/** Writes the state atomically: a 0600 temporary file, fsync, rename, fsync the directory. */
export async function saveState(dir: string, state: AgentState): Promise<void> {
  const stateDir = join(dir, STATE_DIR)
  await mkdir(dir, { recursive: true, mode: 0o755 })
  await mkdir(stateDir, { recursive: true, mode: 0o700 })
  await chmod(stateDir, 0o700)
  const tmp = join(stateDir, `${STATE_FILE}.tmp`)
  await rm(tmp, { force: true })
  const handle = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
  try {
    await handle.writeFile(`${JSON.stringify(state, null, 2)}\n`, 'utf8')
    await handle.chmod(0o600)
    await handle.sync()
  } finally {
    await handle.close()
  }
  await rename(tmp, join(stateDir, STATE_FILE))
  const dirHandle = await open(stateDir, constants.O_RDONLY)
  try {
    await dirHandle.sync()
  } finally {
    await dirHandle.close()
  }
}

const iso = (ms: number) => new Date(ms).toISOString()

/** The state to save for the agent's current certificate, token and refresh token. */
export function stateOf(
  cred: Credential | undefined,
  token: AccessToken | undefined,
  refreshToken: string | undefined,
  crlNumbers: ReadonlyMap<string, bigint> = new Map(),
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
