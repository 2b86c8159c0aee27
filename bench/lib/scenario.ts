import { closedLoop, sizeFor, type LoadResult } from './measure.js'
import { processTree, treeCpuMicros } from './proc.js'

/**
 * One load scenario against one server process (tree): a short warm-up to learn the rate, a
 * warm-up of `warmupSeconds` of the same requests (the server's code for them is then compiled
 * and optimised, as in a server that has been up for a while), then a run sized to fill
 * `seconds`, with the server's CPU time read from /proc before and after.
 */

export type Sender = (i: number, worker: number) => Promise<void>

export interface Scenario {
  /** Concurrent closed loops (clients). */
  readonly workers: number
  /** Makes what `n` requests need (join tokens, CSRs: not measured) and returns the sender. */
  prepare(n: number): Promise<Sender>
}

export interface ScenarioResult extends LoadResult {
  /** Server CPU per request in microseconds. */
  readonly cpuUs: number
}

export interface ScenarioOptions {
  readonly seconds: number
  readonly warmup: number
  /** Load of the same kind before the measured run; 0: the short warm-up only. */
  readonly warmupSeconds?: number
  readonly minRequests: number
  readonly maxRequests: number
}

export async function runScenario(
  serverPid: number,
  sc: Scenario,
  opts: ScenarioOptions,
): Promise<ScenarioResult> {
  const warmSender = await sc.prepare(opts.warmup)
  let warm = await closedLoop(opts.warmup, sc.workers, warmSender)
  const warmSeconds = opts.warmupSeconds ?? 0
  if (warmSeconds > 0) {
    const w = sizeFor(warm.perSecond, warmSeconds, opts.warmup, opts.maxRequests)
    warm = await closedLoop(w, sc.workers, await sc.prepare(w))
  }
  const n = sizeFor(warm.perSecond, opts.seconds, opts.minRequests, opts.maxRequests)
  const sender = await sc.prepare(n)
  const pids = processTree(serverPid)
  const cpu0 = treeCpuMicros(pids)
  const r = await closedLoop(n, sc.workers, sender)
  const cpu = treeCpuMicros(pids) - cpu0
  return { ...r, cpuUs: cpu / n }
}
