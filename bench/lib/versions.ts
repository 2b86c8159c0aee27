import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'

/** Versions of the peers and libraries a run used, for the table and results.json. */

export function packageVersion(name: string): string {
  try {
    const require = createRequire(import.meta.url)
    return JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')).version
  } catch {
    return '?'
  }
}

export function cfsslVersion(): string {
  try {
    return /Version:\s*(\S+)/.exec(execFileSync('cfssl', ['version'], { encoding: 'utf8' }))![1]!
  } catch {
    return '?'
  }
}
