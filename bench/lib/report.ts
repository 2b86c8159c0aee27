import { cpus } from 'node:os'

/**
 * The bench's results: rows of figures grouped by section, each with its ratio to a reference
 * measured in the same run, and the issue's targets with pass/fail. Printed as a table and
 * written as JSON (bench/results.json).
 */

export interface Row {
  readonly section: string
  readonly name: string
  /** The figure itself (rate, time, size); null when it could not be measured ("n/a"). */
  readonly value: number | null
  readonly unit: string
  readonly p50Ms?: number
  readonly p99Ms?: number
  /** Server CPU per request, microseconds (all threads, all worker processes). */
  readonly cpuUs?: number
  /** value / reference.value, with what the reference is. */
  readonly ratio?: { readonly value: number | null; readonly to: string }
  readonly note?: string
}

export interface Target {
  readonly name: string
  readonly value: number | null
  /** `>=` or `<`, against `bound`. */
  readonly op: '>=' | '<'
  readonly bound: number
  readonly unit: 'x' | 'ms' | 'MB'
  /** The row showing the figure: the verdict is printed next to it too. */
  readonly row?: Row
}

export class Report {
  readonly rows: Row[] = []
  readonly targets: Target[] = []
  readonly errors: { section: string; message: string }[] = []
  readonly started = new Date()

  add(row: Row): Row {
    this.rows.push(row)
    return row
  }

  find(section: string, name: string): Row | undefined {
    return this.rows.find((r) => r.section === section && r.name === name)
  }

  target(t: Target): void {
    this.targets.push(t)
  }

  error(section: string, e: unknown): void {
    const message = e instanceof Error ? (e.stack ?? e.message) : String(e)
    this.errors.push({ section, message })
  }

  toJSON(extra: Record<string, unknown>) {
    return {
      started_at: this.started.toISOString(),
      duration_s: Math.round((Date.now() - this.started.getTime()) / 100) / 10,
      machine: {
        cpus: cpus().length,
        model: cpus()[0]?.model ?? 'unknown',
        node: process.version,
        platform: `${process.platform}-${process.arch}`,
      },
      ...extra,
      rows: this.rows,
      targets: this.targets.map(({ row, ...t }) => ({
        ...t,
        ...(row ? { row: `${row.section} / ${row.name}` } : {}),
        pass: passes(t),
      })),
      errors: this.errors,
    }
  }
}

/** null when the figure is missing (n/a): neither pass nor fail. */
export function passes(t: Target): boolean | null {
  if (t.value === null || !Number.isFinite(t.value)) return null
  return t.op === '>=' ? t.value >= t.bound : t.value < t.bound
}

/** A ratio that survives missing figures: null unless both sides were measured. */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined || b === 0) return null
  const r = a / b
  return Number.isFinite(r) ? r : null
}

function fmt(v: number | null | undefined, digits = 0): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return 'n/a'
  if (Math.abs(v) >= 100 || digits === 0) return Math.round(v).toLocaleString('en-US')
  return v.toFixed(digits)
}

function fmtRatio(v: number | null | undefined): string {
  if (v === null || v === undefined) return 'n/a'
  if (v >= 10) return `${v.toFixed(0)}x`
  return v >= 0.1 ? `${v.toFixed(2)}x` : `${v.toPrecision(2)}x`
}

function verdict(t: Target): string {
  const p = passes(t)
  return p === null ? 'n/a ' : p ? 'PASS' : 'FAIL'
}

function bound(t: Target): string {
  return `${t.op === '>=' ? '≥' : '<'} ${t.bound}${t.unit === 'x' ? 'x' : ` ${t.unit}`}`
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n)
}

/** The table as printed at the end of a run. */
export function renderTable(report: Report): string {
  const out: string[] = []
  let section = ''
  const byRow = new Map(report.targets.filter((t) => t.row).map((t) => [t.row!, t]))
  const header = `${pad('', 62)} ${pad('value', 12, true)} ${pad('unit', 6)} ${pad('p50 ms', 8, true)} ${pad('p99 ms', 8, true)} ${pad('cpu µs', 8, true)}  ratio`
  for (const r of report.rows) {
    if (r.section !== section) {
      section = r.section
      out.push('', `== ${section} ==`, header)
    }
    const t = byRow.get(r)
    const ratioText =
      (r.ratio ? `${fmtRatio(r.ratio.value)} of ${r.ratio.to}` : '') +
      (t ? `  [target ${bound(t)}: ${verdict(t).trim()}]` : '')
    const digits = r.unit === '/s' ? 0 : 2
    out.push(
      [
        pad(r.name.slice(0, 62), 62),
        pad(fmt(r.value, digits), 12, true),
        pad(r.unit, 6),
        pad(r.p50Ms === undefined ? '' : fmt(r.p50Ms, 2), 8, true),
        pad(r.p99Ms === undefined ? '' : fmt(r.p99Ms, 2), 8, true),
        pad(r.cpuUs === undefined ? '' : fmt(r.cpuUs), 8, true),
        ` ${ratioText}${r.note ? `  (${r.note})` : ''}`,
      ].join(' '),
    )
  }
  if (report.targets.length) {
    out.push('', '== targets (issue 10) ==')
    for (const t of report.targets) {
      const value = t.unit === 'x' ? fmtRatio(t.value) : `${fmt(t.value, 1)} ${t.unit}`
      out.push(`${verdict(t)}  ${pad(t.name, 58)} ${pad(value, 12, true)}  (target ${bound(t)})`)
    }
  }
  for (const e of report.errors) out.push('', `!! ${e.section} failed: ${e.message}`)
  return out.join('\n')
}
