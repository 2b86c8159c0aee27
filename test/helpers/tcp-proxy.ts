import { connect, createServer, type Server, type Socket } from 'node:net'

/**
 * A loopback TCP forwarder in front of the real test server, standing in for the network and
 * the database host: while `down`, nothing listens on its port (connections are refused, as
 * when PostgreSQL is not up yet), and going down cuts every open connection (a crash, a
 * failover). The database behind it is the real one.
 */
export class TcpProxy {
  #server: Server | undefined
  readonly #sockets = new Set<Socket>()
  #port = 0

  constructor(private readonly target: { host: string; port: number }) {}

  get port(): number {
    return this.#port
  }

  /** Starts listening (on the port it had before, if it had one). */
  async up(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.target.port, this.target.host)
      for (const s of [client, upstream]) {
        this.#sockets.add(s)
        s.on('close', () => this.#sockets.delete(s))
        s.on('error', () => {
          client.destroy()
          upstream.destroy()
        })
      }
      client.pipe(upstream).pipe(client)
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.#port, '127.0.0.1', () => resolve())
    })
    this.#port = (server.address() as { port: number }).port
    this.#server = server
  }

  /** A port nothing listens on yet, kept for a later `up()`. */
  async reserve(): Promise<number> {
    await this.up()
    await this.down()
    return this.#port
  }

  /** Stops listening and cuts every connection through it. */
  async down(): Promise<void> {
    const server = this.#server
    this.#server = undefined
    for (const s of this.#sockets) s.destroy()
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}
