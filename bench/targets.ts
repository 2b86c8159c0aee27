import type { HttpsResults } from './sections/https.js'
import type { CryptoLimits } from './sections/crypto.js'
import { ratio, type Report, type Row } from './lib/report.js'
import type { Comparison } from './sections/peers.js'

/**
 * The targets of issue 10, each a ratio (or a bound) computed from this run's figures and
 * attached to the row that shows it, so the table prints the verdict next to the ratio.
 */
export function addTargets(
  report: Report,
  limits: CryptoLimits,
  https: HttpsResults | undefined,
  token: Comparison | undefined,
  enroll: Comparison | undefined,
  verifier: { verifier: number; jose: number } | undefined,
): void {
  const row = (section: string, name: string): Row | undefined =>
    report.rows.find((r) => r.section.startsWith(section) && r.name.includes(name))
  const inproc = row('2.', 'enroll')
  const rss = row('7.', '1 worker')
  const x = (name: string, value: number | null, bound: number, at: Row | undefined) =>
    report.target({ name, value, op: '>=', bound, unit: 'x', ...(at ? { row: at } : {}) })
  x(
    'token grants over HTTPS vs node-oidc-provider',
    ratio(token?.certbound?.perSecond, token?.peer.perSecond),
    2,
    row('4.', 'token grants vs'),
  )
  x(
    'refresh vs client_credentials (within 20%)',
    ratio(https?.refresh?.perSecond, https?.token?.perSecond),
    0.8,
    row('3.', 'refresh_token'),
  )
  x(
    'introspection vs bare mTLS /healthz',
    ratio(https?.introspect?.perSecond, https?.healthz?.perSecond),
    0.6,
    row('3.', 'introspect'),
  )
  x(
    'enrolment over HTTPS vs cfssl signing',
    ratio(enroll?.certbound?.perSecond, enroll?.peer.perSecond),
    0.7,
    row('4.', 'enrolment vs cfssl'),
  )
  x(
    'in-process issuance vs the issuance crypto limit',
    ratio(inproc?.value, limits.issuance),
    0.3,
    inproc,
  )
  x(
    '@certbound/verifier vs jose.jwtVerify',
    ratio(verifier?.verifier, verifier?.jose),
    0.9,
    row('5.', '@certbound/verifier'),
  )
  report.target({
    name: 'server peak RSS under the HTTPS load',
    value: rss?.value ?? null,
    op: '<',
    bound: 200,
    unit: 'MB',
    ...(rss ? { row: rss } : {}),
  })
}
