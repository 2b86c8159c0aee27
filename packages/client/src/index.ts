/**
 * `@certbound/client`: an undici fetch for Node workloads that presents the agent's current
 * certificate and access token, and follows rotations without a restart.
 *
 * @packageDocumentation
 */
import { watch } from 'node:fs'
import type { FSWatcher } from 'node:fs'
import { Agent, Headers, fetch as undiciFetch } from 'undici'
import type { Dispatcher, RequestInfo, RequestInit, Response } from 'undici'
import { ClientError } from './errors.js'
import { currentGenerationPath, readGeneration } from './generation.js'
import type { Generation } from './generation.js'

export { CLIENT_ERROR_CODES, ClientError } from './errors.js'
export type { ClientErrorCode } from './errors.js'
export type { Generation } from './generation.js'

/** Options of {@link createBoundFetch}. */
export interface BoundFetchOptions {
  /**
   * A `certbound agent --out` directory: `cert.pem`, `key.pem`, `chain.pem`, `bundle.pem` and
   * `token.json` link into `..data/`, a symlink switched atomically on each rotation.
   */
  dir: string
  /** PEM of trust anchors for servers, instead of the generation's `bundle.pem`. */
  caBundle?: string
  /** How often `dir/..data` is checked for a rotation, in ms (plus fs.watch). Default 1 000. */
  reloadIntervalMs?: number
  /** Called after a new generation is in use. */
  onReload?: (generation: Generation) => void
  /** Called when a new generation could not be loaded (the previous one stays in use). */
  onError?: (error: unknown) => void
}

/** A fetch bound to the workload's current certificate and token. */
export interface BoundFetch {
  /** undici `fetch` over mTLS with `Authorization: Bearer <current access token>`. */
  fetch(input: RequestInfo, init?: RequestInit): Promise<Response>
  /** The dispatcher of the current generation (mTLS only, no token), e.g. for introspection. */
  dispatcher(): Dispatcher
  /** The generation in use. */
  current(): Generation
  /**
   * Checks for a rotation now (a check that starts after this call, so a switch that already
   * happened is seen) and resolves with the generation in use afterwards.
   */
  reload(): Promise<Generation>
  /** Stops watching and closes the connection pools gracefully. */
  close(): Promise<void>
}

interface Loaded {
  readonly generation: Generation
  readonly agent: Agent
}

function agentFor(generation: Generation): Agent {
  // Present the chain (leaf + intermediate) so the server can build the path to its root.
  return new Agent({
    connect: { cert: generation.chainPem, key: generation.keyPem, ca: generation.caPem },
  })
}

/**
 * Creates a fetch that presents the agent's current certificate and key and adds its current
 * access token. A rotation (`dir/..data` switched to a new generation) is picked up without a
 * restart: cert, key and token are re-read together from the new generation, and a new undici
 * Agent replaces the old one — pooled connections keep presenting the certificate they were
 * opened with, so the old pool is closed gracefully (in-flight requests finish) rather than
 * reused with the new token.
 *
 * @throws {@link ClientError} if the directory does not hold a complete, consistent generation.
 * @example
 * ```ts
 * import { createBoundFetch } from '@certbound/client'
 *
 * const api = await createBoundFetch({ dir: '/var/run/certbound' })
 * const res = await api.fetch('https://billing.internal:8444/api/invoices')
 * console.log(res.status, await res.json())
 * await api.close()
 * ```
 */
export async function createBoundFetch(options: BoundFetchOptions): Promise<BoundFetch> {
  const { dir, caBundle, onReload, onError } = options
  const path = await currentGenerationPath(dir)
  const first = await readGeneration(path, caBundle)
  let loaded: Loaded = { generation: first, agent: agentFor(first) }
  let closed = false
  let tail: Promise<unknown> = Promise.resolve()
  let waiting: Promise<Generation> | undefined

  async function swapIfRotated(): Promise<void> {
    const next = await currentGenerationPath(dir)
    if (next === loaded.generation.path || closed) return
    const generation = await readGeneration(next, caBundle)
    if (closed) return
    const old = loaded
    loaded = { generation, agent: agentFor(generation) }
    old.agent.close().catch(() => {}) // in-flight requests finish on the old pool
    onReload?.(generation)
  }

  // Checks run one at a time. Callers share a check that has not started yet, never one that
  // is running (it may have resolved the link before the switch).
  function reload(): Promise<Generation> {
    if (waiting !== undefined) return waiting
    const run = tail.then(async () => {
      waiting = undefined
      try {
        await swapIfRotated()
      } catch (err) {
        onError?.(err)
      }
      return loaded.generation
    })
    waiting = run
    tail = run
    return run
  }

  const timer = setInterval(() => void reload(), options.reloadIntervalMs ?? 1_000)
  timer.unref()
  let watcher: FSWatcher | undefined
  try {
    watcher = watch(dir, () => void reload())
    watcher.on('error', () => watcher?.close())
    watcher.unref()
  } catch {
    // fs.watch is a fast path only; polling covers platforms without it.
  }

  return {
    async fetch(input, init) {
      if (closed) throw new ClientError('ERR_CLIENT_CLOSED', 'BoundFetch is closed')
      const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url)
      // The token goes only over TLS, where the bound certificate is presented with it.
      if (url.protocol !== 'https:')
        throw new TypeError(`refusing to send the access token over ${url.protocol}`)
      if (Date.now() >= loaded.generation.expiresAt.getTime()) await reload()
      const { generation, agent } = loaded // one generation for both token and certificate
      const headers = new Headers(
        init?.headers ??
          (typeof input === 'string' || input instanceof URL ? undefined : input.headers),
      )
      headers.set('authorization', `Bearer ${generation.accessToken}`)
      return undiciFetch(input, { ...init, headers, dispatcher: agent })
    },
    dispatcher: () => loaded.agent,
    current: () => loaded.generation,
    reload,
    async close() {
      if (closed) return
      closed = true
      clearInterval(timer)
      watcher?.close()
      await tail
      await loaded.agent.close()
    },
  }
}
