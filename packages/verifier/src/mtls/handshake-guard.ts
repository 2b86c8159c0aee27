import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Server as TlsServer, TLSSocket } from 'node:tls'
import { GuardedStream } from './guarded-stream.js'
import { normalizeAddress } from './peer.js'

/*
 * A server that asks for client certificates lets OpenSSL check the signature of every
 * certificate a peer sends, on the main thread, before any route runs — and Node gives no hook
 * to cap the chain depth or the Certificate message. A chain of 60 junk RSA-3072 certificates
 * with 3000-bit public exponents costs about 300 ms of CPU per handshake (a normal one: ~8 ms).
 * A trust store without our CA changes nothing: OpenSSL builds the chain from what the peer
 * sent. So the guard sits between TCP and TLS: it counts what a client sends until its
 * handshake completes and closes it past `maxHandshakeBytes` (the Certificate message never
 * reaches OpenSSL whole), and it admits handshakes only while a slot is free, globally and per
 * address; the rest wait in a bounded queue, so a flood is bounded and legitimate clients wait
 * their turn instead of being reset.
 */

/** Limits of {@link guardHandshakes}. The defaults let 50 parallel clients from one address in. */
export interface HandshakeGuardOptions {
  /** Handshakes in progress at once, over all peers. Default 256. */
  maxHandshakes?: number
  /** Handshakes in progress at once from one address. Default 64. */
  maxHandshakesPerAddress?: number
  /** Open connections (handshaking or established) from one address. Default 512. */
  maxConnectionsPerAddress?: number
  /** Connections waiting for a slot, over all peers; beyond, new ones are closed. Default 1024. */
  maxQueued?: number
  /** Connections waiting for a slot from one address. Default 256. */
  maxQueuedPerAddress?: number
  /** How long a connection may wait for a slot, in ms. Default 10 000. */
  queueTimeoutMs?: number
  /** How long a handshake may take once started, in ms. Default 10 000. */
  handshakeTimeoutMs?: number
  /**
   * Bytes a client may send before its handshake completes. A certbound client sends 2-6 KB
   * (hello, leaf and intermediate, signature); junk chains cost about 4 ms of CPU per KB.
   * Default 16 384.
   */
  maxHandshakeBytes?: number
}

/** What the guard did so far (monotonic counts) and holds now (gauges). */
export interface HandshakeCounters {
  /** TCP connections accepted. */
  readonly accepted: number
  /** Of those, how many had to wait for a slot. */
  readonly queued: number
  /** Handshakes handed to TLS. */
  readonly started: number
  readonly completed: number
  /** Handshakes that ended without completing (client gone, TLS error). */
  readonly failed: number
  /** Handshakes closed at `handshakeTimeoutMs`. */
  readonly timedOut: number
  /** Handshakes closed for sending more than `maxHandshakeBytes`. */
  readonly oversized: number
  /** Connections closed without a handshake: the queue was full, or they waited too long. */
  readonly refused: number
  readonly inFlight: number
  readonly waiting: number
  /** Connections open now, handshaking or established. */
  readonly open: number
}

/** A guard installed on a TLS server. */
export interface HandshakeGuard {
  counters(): HandshakeCounters
  /** Closes waiting and handshaking connections (established ones are the server's). */
  close(): void
}

const DEFAULTS: Required<HandshakeGuardOptions> = {
  maxHandshakes: 256,
  maxHandshakesPerAddress: 64,
  maxConnectionsPerAddress: 512,
  maxQueued: 1024,
  maxQueuedPerAddress: 256,
  queueTimeoutMs: 10_000,
  handshakeTimeoutMs: 10_000,
  maxHandshakeBytes: 16_384,
}

interface PeerState {
  handshaking: number
  open: number
  queued: number
}

interface Waiting {
  readonly raw: Socket
  readonly address: string
  readonly timer: NodeJS.Timeout
  readonly leave: () => void
}

type Counts = { -readonly [K in keyof HandshakeCounters]: number }

const GUARDED = Symbol('certbound.handshakeGuard')

function checkOptions(options: HandshakeGuardOptions): Required<HandshakeGuardOptions> {
  const o = { ...DEFAULTS }
  for (const [name, value] of Object.entries(options)) {
    if (value === undefined) continue
    if (!(name in DEFAULTS)) throw new TypeError(`unknown handshake guard option "${name}"`)
    if (typeof value !== 'number' || !(value >= 1))
      throw new TypeError(`handshake guard option "${name}" must be a number ≥ 1`)
    o[name as keyof HandshakeGuardOptions] = value
  }
  return o
}

/**
 * Installs the handshake guard on a TLS or HTTPS server (before it listens): the server's own
 * `connection` handling then runs only for connections the guard admits. For the CA server and
 * for resource servers that ask for client certificates alike.
 *
 * The guard learns that a handshake completed from `secureConnection`, which Node emits while
 * TLS processes the bytes the guard feeds it; a server with `newSession` listeners (its own TLS
 * session cache) delays that event and is not supported.
 *
 * @throws {TypeError} on invalid options, or when the server is already guarded.
 * @example
 * ```ts
 * import { createServer } from 'node:https'
 * import { guardHandshakes } from 'certbound/verifier'
 *
 * const server = createServer({ cert, key, ca: bundlePem, requestCert: true, rejectUnauthorized: false }, handler)
 * const guard = guardHandshakes(server, { maxHandshakesPerAddress: 16 })
 * server.listen(8444)
 * // guard.counters(): { started, completed, failed, timedOut, oversized, refused, queued, … }
 * ```
 */
export function guardHandshakes(
  server: TlsServer,
  options: HandshakeGuardOptions = {},
): HandshakeGuard {
  const o = checkOptions(options)
  const holder = server as TlsServer & { [GUARDED]?: true }
  if (holder[GUARDED]) throw new TypeError('this server already has a handshake guard')
  if (server.listenerCount('newSession') > 0)
    throw new TypeError('a server with its own TLS session cache (newSession) cannot be guarded')
  holder[GUARDED] = true
  const tlsListeners = server.listeners('connection') as ((s: Duplex) => void)[]
  server.removeAllListeners('connection')

  const c: Counts = {
    accepted: 0,
    queued: 0,
    started: 0,
    completed: 0,
    failed: 0,
    timedOut: 0,
    oversized: 0,
    refused: 0,
    inFlight: 0,
    waiting: 0,
    open: 0,
  }
  const peers = new Map<string, PeerState>()
  const queue: Waiting[] = []
  const handshaking = new Set<GuardedStream>()
  let feeding: GuardedStream | undefined
  let closed = false

  const peerOf = (address: string) => {
    let p = peers.get(address)
    if (p === undefined) peers.set(address, (p = { handshaking: 0, open: 0, queued: 0 }))
    return p
  }
  const forget = (address: string, p: PeerState) => {
    if (p.handshaking + p.open + p.queued === 0) peers.delete(address)
  }
  const canStart = (p: PeerState) =>
    c.inFlight < o.maxHandshakes &&
    p.handshaking < o.maxHandshakesPerAddress &&
    p.open < o.maxConnectionsPerAddress

  function start(raw: Socket, address: string, p: PeerState): void {
    c.started++
    c.inFlight++
    c.open++
    p.handshaking++
    p.open++
    let ended = false
    const endHandshake = (outcome: 'completed' | 'failed' | 'timedOut' | 'oversized') => {
      if (ended) return
      ended = true
      clearTimeout(timer)
      handshaking.delete(stream)
      c[outcome]++
      c.inFlight--
      p.handshaking--
      setImmediate(drain)
    }
    const stream: GuardedStream = new GuardedStream(raw, o.maxHandshakeBytes, {
      feeding: (s) => (feeding = s),
      oversized: () => endHandshake('oversized'),
      completed: () => endHandshake('completed'),
    })
    const timer = setTimeout(() => {
      endHandshake('timedOut')
      stream.destroy()
    }, o.handshakeTimeoutMs)
    handshaking.add(stream)
    stream.once('close', () => {
      endHandshake('failed')
      c.open--
      p.open--
      forget(address, p)
      setImmediate(drain)
    })
    raw.setNoDelay(true)
    for (const listener of tlsListeners) listener.call(server, stream)
  }

  function drain(): void {
    for (let i = 0; i < queue.length && c.inFlight < o.maxHandshakes;) {
      const w = queue[i]!
      const p = peerOf(w.address)
      if (!canStart(p)) {
        i++
        continue
      }
      queue.splice(i, 1)
      clearTimeout(w.timer)
      c.waiting--
      p.queued--
      if (closed || w.raw.destroyed) {
        forget(w.address, p)
        continue
      }
      w.raw.off('close', w.leave)
      start(w.raw, w.address, p)
    }
  }

  function refuse(raw: Socket): void {
    c.refused++
    raw.destroy()
  }

  function enqueue(raw: Socket, address: string, p: PeerState): void {
    c.queued++
    c.waiting++
    p.queued++
    const leave = () => {
      const i = queue.findIndex((w) => w.raw === raw)
      if (i === -1) return
      clearTimeout(queue[i]!.timer)
      queue.splice(i, 1)
      c.waiting--
      p.queued--
      forget(address, p)
    }
    const timer = setTimeout(() => {
      leave()
      refuse(raw)
    }, o.queueTimeoutMs)
    raw.once('close', leave)
    queue.push({ raw, address, timer, leave })
  }

  server.on('connection', (raw: Socket) => {
    c.accepted++
    raw.on('error', () => raw.destroy())
    if (closed) return refuse(raw)
    const address = normalizeAddress(raw.remoteAddress) ?? 'unknown'
    const p = peerOf(address)
    // Behind this address's own waiting connections; others' need not hold it back.
    if (canStart(p) && p.queued === 0) return start(raw, address, p)
    if (c.waiting < o.maxQueued && p.queued < o.maxQueuedPerAddress) return enqueue(raw, address, p)
    forget(address, p)
    refuse(raw)
  })
  // Emitted from inside GuardedStream.emit while TLS processes the client's Finished.
  server.prependListener('secureConnection', (tls: TLSSocket) => {
    feeding?.markSecured(tls)
  })
  server.once('close', () => guard.close())

  const guard: HandshakeGuard = {
    counters: () => ({ ...c }),
    close() {
      closed = true
      for (const w of queue.splice(0)) {
        clearTimeout(w.timer)
        w.raw.destroy()
      }
      c.waiting = 0
      for (const s of handshaking) s.destroy()
    },
  }
  return guard
}
