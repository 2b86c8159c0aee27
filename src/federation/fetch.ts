import { Agent, request } from 'undici'

/** At most this much of a discovery document or JWKS is read. */
const MAX_BODY_BYTES = 256 * 1024

/** Why a fetch failed: `transport` (try later) or `content` (the issuer answered nonsense). */
export class FetchFailure extends Error {
  override readonly name = 'FetchFailure'
  constructor(
    readonly kind: 'transport' | 'content',
    message: string,
  ) {
    super(message)
  }
}

/**
 * GETs a JSON object over HTTPS from an issuer, trusting `caPem` (or the system store), within
 * `timeoutMs` for the whole exchange: no redirects, at most 256 KB.
 */
export class IssuerHttp {
  readonly #agent: Agent
  constructor(
    caPem: string | undefined,
    private readonly timeoutMs: number,
  ) {
    this.#agent = new Agent({
      connect: { timeout: timeoutMs, ...(caPem === undefined ? {} : { ca: caPem }) },
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    })
  }

  async getJson(url: string): Promise<Record<string, unknown>> {
    if (!url.startsWith('https://')) throw new FetchFailure('content', `${url} is not https`)
    let text: string
    try {
      const res = await request(url, {
        method: 'GET',
        dispatcher: this.#agent,
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(this.timeoutMs),
      })
      if (res.statusCode !== 200) {
        await res.body.dump().catch(() => undefined)
        throw new FetchFailure('transport', `GET ${url}: HTTP ${res.statusCode}`)
      }
      text = await readLimited(res.body, url)
    } catch (e) {
      if (e instanceof FetchFailure) throw e
      throw new FetchFailure('transport', `GET ${url}: ${reason(e)}`)
    }
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      throw new FetchFailure('content', `GET ${url}: the answer is not JSON`)
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new FetchFailure('content', `GET ${url}: the answer is not a JSON object`)
    }
    return value as Record<string, unknown>
  }

  close(): Promise<void> {
    return this.#agent.close()
  }
}

async function readLimited(body: AsyncIterable<Buffer>, url: string): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += chunk.length
    if (size > MAX_BODY_BYTES) throw new FetchFailure('content', `GET ${url}: over 256 KB`)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

function reason(e: unknown): string {
  const err = e as { name?: string; code?: string; message?: string; cause?: { code?: string } }
  if (err.name === 'TimeoutError' || err.name === 'AbortError') return 'timed out'
  const code = err.code ?? err.cause?.code
  const message = err.message ?? String(e)
  return code && !message.includes(code) ? `${code}: ${message}` : message
}
