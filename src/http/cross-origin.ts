import type { MiddlewareHandler } from 'hono'
import { CAError } from '../errors.js'
import type { AppEnv } from './mtls.js'

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS'])

/**
 * Refuses state-changing requests a browser sends on behalf of another site. A browser presents
 * the client certificate it holds (an admin's, a workload's) to any page that asks, and a
 * "simple" cross-origin POST needs no CORS preflight: a page could revoke a certificate with
 * `fetch(url, {method: 'POST', mode: 'no-cors'})`. Browsers say where a request comes from
 * (Fetch Metadata `Sec-Fetch-Site`, and `Origin` on every cross-origin POST); the CLI, the agent
 * and curl send neither, and are not affected.
 */
export function refuseCrossOrigin(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (SAFE.has(c.req.method)) return next()
    const site = c.req.header('sec-fetch-site')
    const origin = c.req.header('origin')
    const crossSite = site !== undefined && site !== 'same-origin' && site !== 'none'
    const otherOrigin = origin !== undefined && origin !== `https://${c.req.header('host')}`
    if (crossSite || otherOrigin) {
      throw new CAError(
        'ERR_FORBIDDEN',
        'a browser request from another origin cannot change anything here (cross-site request refused)',
      )
    }
    return next()
  }
}
