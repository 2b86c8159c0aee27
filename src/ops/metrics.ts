import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client'
import type { Clock } from '../clock.js'
import type { Store } from '../db/port.js'
import { CLONE_ALARMS } from './events.js'
import { LeanCounter, LeanHistogram } from './lean-metrics.js'

/** What the scrape-time gauges read (each scrape; never on a request). */
export interface MetricsSources {
  readonly store: Store
  readonly clock: Clock
  /** thisUpdate of the stored CRL, if any. */
  readonly crlThisUpdate: () => Promise<number | undefined>
}

/** Seconds; from a fast token grant (~1 ms) to a slow enrolment under load. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
const EXPIRY_HORIZON_MS = 86_400_000

/** `ERR_JOIN_TOKEN_INVALID` → `join_token_invalid`: the label value of a refusal's reason. */
export const reasonLabel = (code: string) => code.replace(/^ERR_/, '').toLowerCase()

/**
 * The server's Prometheus metrics (names prefixed `certbound_`), one registry per server. In a
 * node:cluster worker the registry answers the primary's aggregation requests over IPC
 * (prom-client's AggregatorRegistry): counters and histograms are summed over workers, the
 * gauges read from the shared database are taken once (`max`), not summed.
 */
export class Metrics {
  readonly registry: Registry
  // The per-request ones are lean (src/ops/lean-metrics.ts); the rare ones are prom-client's.
  readonly #requests: LeanHistogram
  readonly #issued: LeanCounter
  readonly #refusals: LeanCounter
  readonly #grants: LeanCounter
  readonly #tokenRefusals: LeanCounter
  readonly #revocations: Counter
  readonly #cloneAlarms: Counter
  readonly #onCloneAlarm = () => this.#cloneAlarms.inc()

  constructor(sources: MetricsSources, options: { worker?: boolean } = {}) {
    this.registry = options.worker ? new AggregatorRegistry() : new Registry()
    // A worker reports this registry to the primary (instead of prom-client's global one).
    if (options.worker) AggregatorRegistry.setRegistries([this.registry])
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry, prefix: 'certbound_' })
    // prom-client names three of its gauges `…_total`, which Prometheus reserves for counters
    // (promtool check metrics refuses them): leave them out.
    for (const m of this.registry.getMetricsAsArray())
      if (m instanceof Gauge && m.name.endsWith('_total')) this.registry.removeSingleMetric(m.name)
    const r = this.registry
    this.#requests = new LeanHistogram(
      'certbound_http_request_duration_seconds',
      'HTTP requests by route pattern, method and status, and how long they took',
      ['route', 'method', 'status'],
      r,
      LATENCY_BUCKETS,
    )
    this.#issued = new LeanCounter(
      'certbound_certificates_issued_total',
      'Workload certificates issued, by operation (enroll, renew)',
      ['operation'],
      r,
    )
    this.#refusals = new LeanCounter(
      'certbound_refusals_total',
      'Requests refused with a coded error, by route pattern and reason',
      ['route', 'reason'],
      r,
    )
    this.#grants = new LeanCounter(
      'certbound_token_grants_total',
      'Access tokens issued, by grant type',
      ['grant_type'],
      r,
    )
    this.#tokenRefusals = new LeanCounter(
      'certbound_token_refusals_total',
      'Token requests refused, by reason',
      ['reason'],
      r,
    )
    this.#revocations = new Counter({
      name: 'certbound_revocations_total',
      help: 'Certificates revoked (cascades included)',
      registers,
    })
    this.#cloneAlarms = new Counter({
      name: 'certbound_clone_alarms_total',
      help: 'Cloned credentials detected (two holders of one lineage)',
      registers,
    })
    this.#scrapeTime(sources, registers)
    CLONE_ALARMS.subscribe(this.#onCloneAlarm)
  }

  /** The database-derived metrics, read when scraped. */
  #scrapeTime(sources: MetricsSources, registers: Registry[]): void {
    const { store, clock } = sources
    new Gauge({
      name: 'certbound_certificates_expiring_24h',
      help: 'Valid certificates whose notAfter is within the next 24 hours',
      aggregator: 'max',
      registers,
      async collect() {
        const now = clock.now().getTime()
        this.set(await store.ops.expiringCertificates(now, now + EXPIRY_HORIZON_MS))
      },
    })
    new Gauge({
      name: 'certbound_crl_age_seconds',
      help: 'Seconds since thisUpdate of the current CRL (-1: none stored yet)',
      aggregator: 'max',
      registers,
      async collect() {
        const at = await sources.crlThisUpdate()
        this.set(at === undefined ? -1 : (clock.now().getTime() - at) / 1000)
      },
    })
    new Gauge({
      name: 'certbound_database_size_bytes',
      help: 'Bytes the database takes',
      aggregator: 'max',
      registers,
      async collect() {
        this.set(await store.ops.databaseBytes())
      },
    })
    let seen = 0
    new Counter({
      name: 'certbound_database_busy_retries_total',
      help: 'Writes that waited for another writer and ran again (SQLite busy waits, PostgreSQL serialization retries)',
      registers,
      collect() {
        const now = store.ops.busyRetries()
        this.inc(now - seen)
        seen = now
      },
    })
  }

  /** One request: route pattern (never the path), method, status, duration. */
  request(route: string, method: string, status: number, seconds: number): void {
    const code = String(status)
    this.#requests.observe(`${route} ${method} ${code}`, [route, method, code], seconds)
  }

  issued(operation: string): void {
    this.#issued.inc(operation, [operation])
  }

  refused(route: string, code: string): void {
    this.#refusals.inc(`${route} ${code}`, [route, reasonLabel(code)])
  }

  revoked(count: number): void {
    this.#revocations.inc(count)
  }

  tokenGranted(grantType: string): void {
    this.#grants.inc(grantType, [grantType])
  }

  tokenRefused(code: string): void {
    this.#tokenRefusals.inc(code, [reasonLabel(code)])
  }

  /** The text a scrape gets. */
  text(): Promise<string> {
    return this.registry.metrics()
  }

  close(): void {
    CLONE_ALARMS.unsubscribe(this.#onCloneAlarm)
    this.registry.clear()
  }
}
