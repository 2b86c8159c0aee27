import type { Command } from 'commander'
import { loadConfig, type Config } from '../config/load.js'

/** The config of a server-side command: --config, else CERTBOUND_CONFIG, else ./ca-config.yaml. */
export function configOf(cmd: Command): Config {
  const opts = cmd.optsWithGlobals() as { config?: string }
  return loadConfig(opts.config ?? process.env.CERTBOUND_CONFIG ?? 'ca-config.yaml')
}

export function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`)
}
