import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, readdirSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'

/**
 * Child processes and what they cost, read from /proc (Linux): CPU time (utime + stime, all
 * threads) and resident memory of a process and every process below it (server.workers).
 */

let ticks: number | undefined
function clockTicks(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      ticks = 100
    }
  }
  return ticks
}

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces). */
function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return text.slice(text.lastIndexOf(')') + 2).split(' ')
  } catch {
    return undefined
  }
}

/** `pid` and all its descendants that are alive now. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const f = statFields(Number(name))
    if (!f) continue
    const ppid = Number(f[1])
    children.set(ppid, [...(children.get(ppid) ?? []), Number(name)])
  }
  const out: number[] = []
  const queue = [pid]
  while (queue.length) {
    const p = queue.pop()!
    out.push(p)
    queue.push(...(children.get(p) ?? []))
  }
  return out
}

/** CPU time of the process tree in microseconds (user + system, every thread). */
export function treeCpuMicros(pids: readonly number[]): number {
  let t = 0
  for (const pid of pids) {
    const f = statFields(pid)
    // After the name: state(0) ppid(1) ... utime(11) stime(12), per proc(5).
    if (f) t += Number(f[11]) + Number(f[12])
  }
  return (t / clockTicks()) * 1e6
}

function statusKb(pid: number, key: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(
      readFileSync(`/proc/${pid}/status`, 'utf8'),
    )
    return m ? Number(m[1]) : 0
  } catch {
    return 0
  }
}

/** Resident memory of the process tree now, in bytes. */
export function treeRssBytes(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + statusKb(pid, 'VmRSS') * 1024, 0)
}

/** The kernel's own peak RSS (VmHWM) of each process, summed, in bytes. */
export function treePeakRssBytes(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + statusKb(pid, 'VmHWM') * 1024, 0)
}

/** Samples the tree's RSS every `ms` while running; `peak` is the largest sum seen. */
export class RssSampler {
  #peak = 0
  #timer: NodeJS.Timeout | undefined
  constructor(private readonly pid: number) {}
  start(ms = 100): void {
    let pids = processTree(this.pid)
    let n = 0
    this.#timer = setInterval(() => {
      if (++n % 20 === 0) pids = processTree(this.pid) // workers may come and go
      this.#peak = Math.max(this.#peak, treeRssBytes(pids))
    }, ms)
    this.#timer.unref()
  }
  stop(): number {
    clearInterval(this.#timer)
    this.#peak = Math.max(this.#peak, treeRssBytes(processTree(this.pid)))
    return this.#peak
  }
  get peak(): number {
    return this.#peak
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

export interface Child {
  readonly proc: ChildProcess
  readonly pid: number
  /** The last lines it wrote to stdout/stderr (kept in `logFile`), for error messages. */
  tail(): string
  stop(): Promise<void>
}

/** Starts a process with stdout and stderr going to `logFile`; `stop()` sends SIGTERM, then KILL. */
export function startChild(
  command: string,
  args: readonly string[],
  opts: { logFile: string; env?: NodeJS.ProcessEnv; cwd?: string },
): Child {
  const log = createWriteStream(opts.logFile)
  const proc = spawn(command, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  proc.stdout!.pipe(log, { end: false })
  proc.stderr!.pipe(log, { end: false })
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  return {
    proc,
    pid: proc.pid!,
    tail() {
      try {
        return readFileSync(opts.logFile, 'utf8').split('\n').slice(-15).join('\n')
      } catch {
        return ''
      }
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM')
        const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000)
        await exited
        clearTimeout(timer)
      }
      log.end()
    },
  }
}

/** Retries `probe` every 100 ms until it resolves, the child exits, or `ms` passed. */
export async function waitUntil(
  what: string,
  probe: () => Promise<unknown>,
  child: Child | undefined,
  ms = 60_000,
): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      await probe()
      return
    } catch (e) {
      if (child && child.proc.exitCode !== null)
        throw new Error(`${what} exited (${child.proc.exitCode}):\n${child.tail()}`)
      if (Date.now() > deadline)
        throw new Error(`${what} did not come up: ${(e as Error).message}\n${child?.tail() ?? ''}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}
