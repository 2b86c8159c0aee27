import { spawn } from 'node:child_process'

import type { Logger } from 'pino'

import type { Credential } from './credential.js'
import { AgentFailure } from './errors.js'
import type { FileAccess } from './file-access.js'
import { stageGeneration } from './out-dir.js'
import type { GenerationFiles } from './out-dir.js'
import type { AccessToken } from './token.js'

/** `token.json`: what a reader needs to send the token, and which certificate it belongs to. */
export function tokenJson(token: AccessToken): string {
  const doc = {
    access_token: token.accessToken,
    token_type: 'Bearer',
    expires_at: new Date(token.expiresAt).toISOString(),
    'x5t#S256': token.thumbprint,
  }
  return `${JSON.stringify(doc, null, 2)}\n`
}

/**
 * The files of one generation. `token.json` is left out unless the token is bound to this very
 * certificate: a reader must never pair a certificate with another certificate's token.
 */
export function generationFiles(
  cred: Credential,
  token: AccessToken | undefined,
  bundlePem: string,
  crls: GenerationFiles = {},
): GenerationFiles {
  return {
    ...crls,
    'cert.pem': cred.certPem,
    'chain.pem': cred.chainPem,
    'key.pem': cred.keyPem,
    'bundle.pem': bundlePem,
    ...(token?.thumbprint === cred.thumbprint ? { 'token.json': tokenJson(token) } : {}),
  }
}

/**
 * Writes a new generation and switches to it. `beforeSwitch` runs once the generation is on
 * disk but before readers can see it (the agent saves its state there).
 */
export async function publishGeneration(
  dir: string,
  files: GenerationFiles,
  beforeSwitch: () => Promise<void>,
  access?: FileAccess,
): Promise<string> {
  const staged = await stageGeneration(dir, files, { access })
  await beforeSwitch()
  await staged.commit()
  return staged.name
}

/** What a generation holds, to skip writing an identical one. */
export function publishedKey(cred: Credential, token: AccessToken | undefined, crls = ''): string {
  const bound = token?.thumbprint === cred.thumbprint
  return `${cred.thumbprint}:${bound ? `${token.receivedAt}` : '-'}:${crls}`
}

/** Result of an `--exec` hook. */
export interface HookResult {
  readonly code: number | null
  readonly signal: string | null
}

const HOOK_TIMEOUT_MS = 60_000

/**
 * Runs `command` with `sh -c` after a switch, with the output directory and serial in its
 * environment; stdout and stderr go to the agent's. Killed after a minute so that a stuck hook
 * cannot stop renewals.
 */
export function runHook(command: string, env: Record<string, string>): Promise<HookResult> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env }
  delete childEnv.CERTBOUND_JOIN_TOKEN // a secret the hook has no use for
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', command], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: childEnv,
      timeout: HOOK_TIMEOUT_MS,
    })
    child.on('error', () => resolve({ code: null, signal: 'spawn-error' }))
    child.on('close', (code, signal) => resolve({ code, signal }))
  })
}

/** Runs `--exec` after a switch: a failure ends a `--once` run, and is only logged otherwise. */
export async function runExecHook(
  command: string,
  env: Record<string, string>,
  once: boolean,
  log: Logger,
): Promise<void> {
  const result = await runHook(command, env)
  if (result.code === 0) return void log.info('--exec command succeeded')
  const how =
    result.code === null ? `was stopped (${result.signal})` : `exited with code ${result.code}`
  if (once) throw new AgentFailure('unavailable', `the --exec command ${how}`)
  log.warn(`the --exec command ${how}`)
}
