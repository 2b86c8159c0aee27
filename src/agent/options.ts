import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'

import { parseDuration } from '../config/duration.js'
import { KEY_TYPES } from '../crypto/keys.js'
import type { KeyType } from '../crypto/keys.js'
import { spiffeIdProblem } from '../identity/spiffe-id.js'
import { pemBlocks } from '../x509/pem.js'
import { AgentFailure } from './errors.js'
import { resolveFileAccess, type FileAccess } from './file-access.js'
import type { OidcSourceOptions } from './oidc-token.js'

/** The validated flags of `certbound agent`. */
export interface AgentOptions {
  /** `https://host:port` of the certbound server, without a trailing slash. */
  readonly server: string
  /** PEM trust anchors that the server's TLS certificate must chain to (`--ca-bundle`). */
  readonly caBundlePem: string
  readonly spiffeId: string
  /** DNS names to request (the entry must allow them), e.g. for a workload that serves HTTPS. */
  readonly dnsNames: readonly string[]
  /** Absolute path of the output directory. */
  readonly outDir: string
  /** Single-use enrolment secret; used only when `outDir` holds no usable certificate. */
  readonly joinToken: string | undefined
  /** Where to get an OIDC identity token to enrol with instead (no stored secret). */
  readonly oidc: OidcSourceOptions | undefined
  readonly keyType: KeyType
  /** Requested certificate lifetime (`30s`, `1h`); the server's default when absent. */
  readonly ttl: string | undefined
  readonly once: boolean
  /** Shell command run (`sh -c`) after each switch to a new generation. */
  readonly exec: string | undefined
  readonly logLevel: string
  /** Group and key mode of the published files (`--group`, `--mode`). */
  readonly fileAccess: FileAccess
}

/** The flags as commander hands them over. */
export interface RawAgentFlags {
  server?: string
  caBundle?: string
  spiffeId?: string
  dns?: string[]
  out?: string
  joinToken?: string
  joinTokenFile?: string
  oidc?: string
  oidcAudience?: string
  oidcTokenFile?: string
  oidcTokenEnv?: string
  keyType?: string
  ttl?: string
  once?: boolean
  exec?: string
  logLevel?: string
  group?: string
  mode?: string
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']
// Join tokens are base64url (CONTRACT "Access tokens"); the server accepts up to 512 characters.
const JOIN_TOKEN = /^[A-Za-z0-9_-]{1,512}$/

function usage(message: string): AgentFailure {
  return new AgentFailure('usage', message)
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw usage(`${flag} is required`)
  return value
}

function serverUrl(text: string): string {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw usage(`--server ${JSON.stringify(text)} is not a URL`)
  }
  if (url.protocol !== 'https:') throw usage('--server must be an https:// URL')
  if (url.search || url.hash) throw usage('--server must not have a query or fragment')
  return url.href.replace(/\/+$/, '')
}

function readText(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (e) {
    throw usage(`${flag} ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`)
  }
}

function caBundle(path: string): string {
  const pem = readText(path, '--ca-bundle')
  let count = 0
  try {
    count = pemBlocks(pem, 'CERTIFICATE').length
  } catch (e) {
    throw usage(`--ca-bundle ${path}: ${(e as Error).message}`)
  }
  if (count === 0) throw usage(`--ca-bundle ${path} holds no PEM certificate`)
  return pem
}

function joinToken(flags: RawAgentFlags): string | undefined {
  if (flags.joinToken !== undefined && flags.joinTokenFile !== undefined) {
    throw usage('give --join-token or --join-token-file, not both')
  }
  const token =
    flags.joinTokenFile !== undefined
      ? readText(flags.joinTokenFile, '--join-token-file').trim()
      : flags.joinToken?.trim()
  if (token === undefined || token === '') return undefined
  // Never echo the value: it is a secret.
  if (!JOIN_TOKEN.test(token)) throw usage('the join token is not a base64url string')
  return token
}

/** `--oidc github`, `--oidc-token-file`, `--oidc-token-env`: at most one, and no join token. */
function oidcSource(flags: RawAgentFlags, server: string): OidcSourceOptions | undefined {
  const given = [flags.oidc, flags.oidcTokenFile, flags.oidcTokenEnv].filter((f) => f !== undefined)
  if (given.length > 1) throw usage('give one of --oidc, --oidc-token-file, --oidc-token-env')
  if (flags.oidcAudience !== undefined && flags.oidc === undefined) {
    throw usage('--oidc-audience goes with --oidc github')
  }
  if (given.length === 0) return undefined
  if (flags.joinToken !== undefined || flags.joinTokenFile !== undefined) {
    throw usage('give a join token or an OIDC token source, not both')
  }
  if (flags.oidc !== undefined) {
    if (flags.oidc !== 'github') throw usage('--oidc takes "github" (GitHub Actions)')
    const audience = flags.oidcAudience ?? server
    if (audience.trim() === '') throw usage('--oidc-audience must not be empty')
    return { kind: 'github', audience }
  }
  if (flags.oidcTokenFile !== undefined) {
    if (flags.oidcTokenFile.trim() === '') throw usage('--oidc-token-file must not be empty')
    return { kind: 'file', path: resolve(flags.oidcTokenFile) }
  }
  const name = flags.oidcTokenEnv!
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    throw usage('--oidc-token-env takes the name of an environment variable')
  }
  return { kind: 'env', name }
}

// RFC 1123 host names (LDH labels), lower-cased as the CA compares them.
const DNS_NAME =
  /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/

function dnsNames(names: readonly string[]): string[] {
  const out = names.map((n) => n.trim().toLowerCase())
  const bad = out.find((n) => !DNS_NAME.test(n))
  if (bad !== undefined) throw usage(`--dns ${JSON.stringify(bad)} is not a DNS name`)
  return [...new Set(out)]
}

/** Validates the flags; throws an `AgentFailure` of kind `usage` naming the bad one. */
export function resolveAgentOptions(flags: RawAgentFlags): AgentOptions {
  const spiffeId = required(flags.spiffeId, '--spiffe-id')
  const problem = spiffeIdProblem(spiffeId)
  if (problem !== undefined) throw usage(`--spiffe-id: ${problem}`)
  const keyType = (flags.keyType ?? 'ec-p256') as KeyType
  if (!KEY_TYPES.includes(keyType)) {
    throw usage(`--key-type must be one of ${KEY_TYPES.join(', ')}`)
  }
  if (flags.ttl !== undefined && parseDuration(flags.ttl) === undefined) {
    throw usage('--ttl must be a duration such as 30s, 15m, 1h or 7d')
  }
  const logLevel = flags.logLevel ?? 'info'
  if (!LOG_LEVELS.includes(logLevel))
    throw usage(`--log-level must be one of ${LOG_LEVELS.join(', ')}`)
  if (flags.exec !== undefined && flags.exec.trim() === '') throw usage('--exec must not be empty')
  const server = serverUrl(required(flags.server, '--server'))
  const oidc = oidcSource(flags, server)
  return {
    server,
    caBundlePem: caBundle(required(flags.caBundle, '--ca-bundle')),
    spiffeId,
    dnsNames: dnsNames(flags.dns ?? []),
    outDir: resolve(required(flags.out, '--out')),
    joinToken: joinToken(flags),
    oidc,
    keyType,
    ttl: flags.ttl,
    once: flags.once === true,
    exec: flags.exec,
    logLevel,
    fileAccess: resolveFileAccess(flags),
  }
}
