import type { HttpsResults } from './sections/https.js'
import type { CryptoLimits } from './sections/crypto.js'
import { ratio, type Report } from './lib/report.js'
import type { ScenarioResult } from './lib/scenario.js'

/** The targets of issue 10, each a ratio (or a bound) computed from this run's figures. */
export function addTargets(
  report: Report,
  limits: CryptoLimits,
  https: HttpsResults | undefined,
  oidc: ScenarioResult | undefined,
  cfssl: ScenarioResult | undefined,
  verifier: { verifier: number; jose: number } | undefined,
): void {
  const inproc = report.rows.find((r) => r.section.startsWith('2.') && r.name.startsWith('enroll'))
  const rss = report.rows.find((r) => r.section.startsWith('7.') && r.name.includes('1 worker'))
  const t = report.target.bind(report)
  t({
    name: 'token grants over HTTPS vs node-oidc-provider',
    value: ratio(https?.token?.perSecond, oidc?.perSecond),
    op: '>=',
    bound: 2,
    unit: 'x',
  })
  t({
    name: 'refresh vs client_credentials (within 20%)',
    value: ratio(https?.refresh?.perSecond, https?.token?.perSecond),
    op: '>=',
    bound: 0.8,
    unit: 'x',
  })
  t({
    name: 'introspection vs bare mTLS /healthz',
    value: ratio(https?.introspect?.perSecond, https?.healthz?.perSecond),
    op: '>=',
    bound: 0.6,
    unit: 'x',
  })
  t({
    name: 'enrolment over HTTPS vs cfssl signing',
    value: ratio(https?.enroll?.perSecond, cfssl?.perSecond),
    op: '>=',
    bound: 0.7,
    unit: 'x',
  })
  t({
    name: 'in-process issuance vs the issuance crypto limit',
    value: inproc?.value == null ? null : ratio(inproc.value, limits.issuance),
    op: '>=',
    bound: 0.3,
    unit: 'x',
  })
  t({
    name: '@certbound/verifier vs jose.jwtVerify',
    value: ratio(verifier?.verifier, verifier?.jose),
    op: '>=',
    bound: 0.9,
    unit: 'x',
  })
  t({
    name: 'server peak RSS under the HTTPS load',
    value: rss?.value ?? null,
    op: '<',
    bound: 200,
    unit: 'MB',
  })
}
