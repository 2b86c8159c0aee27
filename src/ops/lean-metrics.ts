import type { Metric, MetricObjectWithValues, MetricValue, Registry } from 'prom-client'

/**
 * Per-request metrics at a few tens of nanoseconds. prom-client's own Histogram and Counter
 * validate and hash their label object on every observation (~1-2 µs each, bench/ops-cost.ts);
 * these keep one plain record per label combination, found by a string key the caller already
 * has, and hand prom-client the finished values when scraped (its registry formats and, across
 * workers, aggregates them like its own: same JSON shape, `sum` aggregator).
 */
interface Series {
  readonly labels: Record<string, string>
  count: number
  sum: number
  /** Histograms: observations per bucket (not cumulative), the last one for +Inf. */
  readonly buckets: number[] | undefined
}

abstract class LeanMetric {
  readonly aggregator = 'sum'
  protected readonly series = new Map<string, Series>()
  abstract readonly type: 'counter' | 'histogram'

  constructor(
    readonly name: string,
    readonly help: string,
    protected readonly labelNames: readonly string[],
    registry: Registry,
  ) {
    registry.registerMetric(this as unknown as Metric)
  }

  protected seriesOf(key: string, values: readonly string[]): Series {
    let s = this.series.get(key)
    if (s === undefined) {
      const labels = Object.fromEntries(this.labelNames.map((n, i) => [n, values[i]!]))
      s = { labels, count: 0, sum: 0, buckets: this.newBuckets() }
      this.series.set(key, s)
    }
    return s
  }

  protected newBuckets(): number[] | undefined {
    return undefined
  }

  abstract values(): MetricValue<string>[]

  async get(): Promise<MetricObjectWithValues<MetricValue<string>>> {
    const metric = { name: this.name, help: this.help, type: this.type, values: this.values() }
    return { ...metric, aggregator: 'sum' } as unknown as MetricObjectWithValues<
      MetricValue<string>
    >
  }

  reset(): void {
    this.series.clear()
  }
}

/** A counter whose label values come with a precomputed key (`labelValues.join(' ')`). */
export class LeanCounter extends LeanMetric {
  readonly type = 'counter'

  inc(key: string, labelValues: readonly string[], by = 1): void {
    this.seriesOf(key, labelValues).count += by
  }

  values(): MetricValue<string>[] {
    return [...this.series.values()].map((s) => ({ labels: s.labels, value: s.count }))
  }
}

/** A histogram with fixed buckets (upper bounds, ascending). */
export class LeanHistogram extends LeanMetric {
  readonly type = 'histogram'

  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    registry: Registry,
    private readonly bounds: readonly number[],
  ) {
    super(name, help, labelNames, registry)
  }

  protected override newBuckets(): number[] {
    return new Array<number>(this.bounds.length + 1).fill(0)
  }

  observe(key: string, labelValues: readonly string[], value: number): void {
    const s = this.seriesOf(key, labelValues)
    let i = 0
    while (i < this.bounds.length && value > this.bounds[i]!) i++
    s.buckets![i]!++
    s.count++
    s.sum += value
  }

  values(): MetricValue<string>[] {
    const out: MetricValue<string>[] = []
    for (const s of this.series.values()) {
      let cumulative = 0
      this.bounds.forEach((le, i) => {
        cumulative += s.buckets![i]!
        out.push(this.#value('_bucket', { le: String(le), ...s.labels }, cumulative))
      })
      out.push(this.#value('_bucket', { le: '+Inf', ...s.labels }, s.count))
      out.push(this.#value('_sum', s.labels, s.sum))
      out.push(this.#value('_count', s.labels, s.count))
    }
    return out
  }

  #value(suffix: string, labels: Record<string, string>, value: number): MetricValue<string> {
    return { labels, value, metricName: `${this.name}${suffix}` } as MetricValue<string>
  }
}
