import type { Socket } from 'node:net'
import { Duplex } from 'node:stream'
import type { TLSSocket } from 'node:tls'

/**
 * The TLS side of one connection: TLS reads and writes this stream, which relays the raw
 * socket. Until the handshake completes it counts what the client sends and feeds TLS at most
 * `budget` bytes, and it marks itself as the connection being fed while TLS processes them:
 * Node emits `secureConnection` from inside that processing, which is how the guard learns
 * which connection completed. A chunk that crosses the budget is fed up to it; the rest goes on
 * only if that completed the handshake (an application record may follow the client's Finished
 * in one read).
 */
export class GuardedStream extends Duplex {
  secured = false
  #count = 0
  #held: Buffer[] = []
  #waiting = false
  #endHeld = false

  constructor(
    readonly raw: Socket,
    private readonly budget: number,
    private readonly hooks: {
      feeding(s: GuardedStream | undefined): void
      oversized(): void
      completed(): void
    },
  ) {
    super({ allowHalfOpen: false })
    raw.on('data', (chunk: Buffer) => {
      // Established, flowing, nothing held or buffered: straight to TLS, past the Readable
      // machinery (which costs more than the relay itself on a small request).
      if (this.secured && this.#held.length === 0 && this.#direct()) {
        super.emit('data', chunk)
        return
      }
      if (!this.push(chunk)) raw.pause()
    })
    raw.on('end', () => this.push(null))
    raw.on('close', () => this.destroy())
    raw.on('error', () => this.destroy())
  }

  /** TLS completed the handshake of this connection (its `secureConnection`). */
  markSecured(tls: TLSSocket): void {
    if (this.secured) return
    this.secured = true
    copyAddresses(tls, this.raw)
    this.hooks.completed()
  }

  #direct(): boolean {
    return this.readableFlowing === true && this.readableLength === 0
  }

  override _read(): void {
    this.raw.resume()
  }

  /**
   * Once established and with nothing queued in the Writable, TLS records go to the raw socket
   * directly (its own buffer keeps them in order); before, or while earlier writes are still
   * queued, through the Writable as any stream write.
   */
  override write(
    chunk: Buffer,
    encoding?: BufferEncoding | ((e?: Error | null) => void),
    callback?: (e?: Error | null) => void,
  ): boolean {
    const done = typeof encoding === 'function' ? encoding : callback
    if (!this.secured || this.writableLength > 0 || this.writableEnded || this.destroyed)
      return super.write(chunk, encoding as BufferEncoding, done)
    if (this.raw.destroyed) {
      if (done) process.nextTick(done)
      return false
    }
    return this.raw.write(chunk, done && (() => done()))
  }

  override cork(): void {
    if (this.secured) this.raw.cork()
    super.cork()
  }

  override uncork(): void {
    super.uncork()
    if (this.secured) this.raw.uncork()
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (e?: Error) => void): void {
    if (this.raw.destroyed) return callback()
    this.raw.write(chunk, () => callback())
  }

  override _final(callback: () => void): void {
    this.raw.end(callback)
  }

  override _destroy(error: Error | null, callback: (e: Error | null) => void): void {
    this.raw.destroy()
    callback(error)
  }

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'end' && this.#held.length > 0) {
      this.#endHeld = true
      return true
    }
    if (event !== 'data' || (this.secured && this.#held.length === 0))
      return super.emit(event, ...args)
    // Held chunks wait for TLS to take the ones before them: read no more meanwhile.
    this.#held.push(args[0] as Buffer)
    this.raw.pause()
    if (!this.#waiting) this.#feed()
    return true
  }

  #tooMuch(): boolean {
    this.hooks.oversized()
    this.destroy()
    return true
  }

  #feed(): void {
    this.#waiting = false
    while (this.#held.length > 0 && !this.destroyed) {
      if (this.secured) {
        super.emit('data', Buffer.concat(this.#held.splice(0)))
        break
      }
      const room = this.budget - this.#count
      if (room <= 0) return void this.#tooMuch()
      let chunk = this.#held.shift()!
      if (chunk.length > room) {
        this.#held.unshift(chunk.subarray(room))
        chunk = chunk.subarray(0, room)
      }
      this.#count += chunk.length
      this.hooks.feeding(this)
      try {
        super.emit('data', chunk)
      } finally {
        this.hooks.feeding(undefined)
      }
      if (!this.secured && this.#held.length > 0) {
        // A TLS error closes the TLS socket only after a microtask, and a read reaching it
        // before that throws (Node 20): let it, before feeding more.
        this.#waiting = true
        setImmediate(() => this.#feed())
        return
      }
    }
    if (this.#held.length > 0 || this.destroyed) return
    if (this.#endHeld) {
      this.#endHeld = false
      super.emit('end')
    }
    if (!this.isPaused()) this.raw.resume()
  }
}

/** The raw socket's addresses on the TLS socket (a TLS socket over a stream has none). */
function copyAddresses(tls: TLSSocket, raw: Socket): void {
  const props = {
    remoteAddress: raw.remoteAddress,
    remotePort: raw.remotePort,
    remoteFamily: raw.remoteFamily,
    localAddress: raw.localAddress,
    localPort: raw.localPort,
  }
  for (const [name, value] of Object.entries(props)) {
    Object.defineProperty(tls, name, { value, configurable: true })
  }
}
