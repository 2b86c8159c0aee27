import {
  AggregatorRegistry,
  collectDefaultMetrics,
  Counter,
  Gauge,
  Histogram,
  Registry,
} from 'prom-client'
import type { Clock } from '../clock.js'
import type { Store } from '../db/port.js'
import { CLONE_ALARMS } from './events.js'

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

type Observe = (seconds: number) => void

/**
 * The server's Prometheus metrics (names prefixed `certbound_`), one registry per server. In a
 * node:cluster worker the registry answers the primary's aggregation requests over IPC
 * (prom-client's AggregatorRegistry): counters and histograms are summed over workers, the
 * gauges read from the shared database are taken once (`max`), not summed.
 */
export class Metrics {
  readonly registry: Registry
  readonly #requests: Histogram<'route' | 'method' | 'status'>
  readonly #observers = new Map<string, Observe>()
  readonly #issued: Counter<'operation'>
  readonly #refusals: Counter<'route' | 'reason'>
  readonly #revocations: Counter
  readonly #cloneAlarms: Counter
  readonly #grants: Counter<'grant_type'>
  readonly #tokenRefusals: Counter<'reason'>
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
    this.#requests = new Histogram({
      name: 'certbound_http_request_duration_seconds',
      help: 'HTTP requests by route pattern, method and status, and how long they took',
      labelNames: ['route', 'method', 'status'],
      buckets: LATENCY_BUCKETS,
      registers,
    })
    this.#issued = new Counter({
      name: 'certbound_certificates_issued_total',
      help: 'Workload certificates issued, by operation (enroll, renew)',
      labelNames: ['operation'],
      registers,
    })
    this.#refusals = new Counter({
      name: 'certbound_refusals_total',
      help: 'Requests refused with a coded error, by route pattern and reason',
      labelNames: ['route', 'reason'],
      registers,
    })
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
    this.#grants = new Counter({
      name: 'certbound_token_grants_total',
      help: 'Access tokens issued, by grant type',
      labelNames: ['grant_type'],
      registers,
    })
    this.#tokenRefusals = new Counter({
      name: 'certbound_token_refusals_total',
      help: 'Token requests refused, by reason',
      labelNames: ['reason'],
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
    const key = `${route} ${method} ${status}`
    let observe = this.#observers.get(key)
    if (observe === undefined) {
      const child = this.#requests.labels(route, method, String(status))
      observe = (s) => child.observe(s)
      this.#observers.set(key, observe)
    }
    observe(seconds)
  }

  issued(operation: string): void {
    this.#issued.labels(operation).inc()
  }

  refused(route: string, code: string): void {
    this.#refusals.labels(route, reasonLabel(code)).inc()
  }

  revoked(count: number): void {
    this.#revocations.inc(count)
  }

  tokenGranted(grantType: string): void {
    this.#grants.labels(grantType).inc()
  }

  tokenRefused(code: string): void {
    this.#tokenRefusals.labels(reasonLabel(code)).inc()
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
