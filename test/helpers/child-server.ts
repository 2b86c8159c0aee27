/**
 * A certbound server in a child process (forked with IPC), so that a test can measure the
 * server's own CPU time (process.cpuUsage) apart from the clients'. The config object comes as
 * JSON in argv[2]; the child answers `{ port }` once listening, and `stats` messages with its CPU
 * time and the handshake guard's counters.
 */
import { pino } from 'pino'
import { configFromObject } from '../../src/config/load.js'
import { handshakeGuardOf } from '../../src/http/server.js'
import { startServer } from '../../src/main.js'

const config = configFromObject(JSON.parse(process.argv[2]!))
const running = await startServer(config, { logger: pino({ level: 'silent' }) })
process.send!({ port: running.address.port })
process.on('message', (m: unknown) => {
  if (m === 'stats') {
    const guard = handshakeGuardOf(running.server)
    process.send!({ cpu: process.cpuUsage(), counters: guard?.counters() })
  }
  if (m === 'stop') void running.close().then(() => process.exit(0))
})
