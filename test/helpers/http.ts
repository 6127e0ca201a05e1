// A raw HTTP client for tests: keeps repeated response headers apart (fetch would join them).
import { request as httpRequest, type OutgoingHttpHeaders } from 'node:http'

export interface RawResponse {
  status: number
  /** Lower-case header name → every value it was sent with, in order. */
  headers: Record<string, string[]>
  body: string
  json: () => unknown
  /** The single value of a header, or undefined; throws when it was sent more than once. */
  one: (name: string) => string | undefined
}

/**
 * One request over a fresh connection. `url` is split by hand, not by WHATWG URL, so a path
 * like `/a/../b` or `/%2e%2e/` reaches the server exactly as written.
 */
export async function send (url: string, opts: { method?: string, headers?: OutgoingHttpHeaders, body?: string | Buffer, localAddress?: string } = {}): Promise<RawResponse> {
  const m = /^http:\/\/([^/:]+):(\d+)(\/.*)?$/.exec(url)
  if (m === null) throw new Error(`send() takes http://host:port/path, got ${url}`)
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: m[1], port: Number(m[2]), path: m[3] ?? '/', method: opts.method ?? 'GET', headers: opts.headers, localAddress: opts.localAddress, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', reject)
      res.on('end', () => {
        const headers: Record<string, string[]> = {}
        for (let i = 0; i < res.rawHeaders.length; i += 2) {
          const name = res.rawHeaders[i]!.toLowerCase()
          ;(headers[name] ??= []).push(res.rawHeaders[i + 1]!)
        }
        const body = Buffer.concat(chunks).toString()
        resolve({
          status: res.statusCode ?? 0,
          headers,
          body,
          json: () => JSON.parse(body),
          one: (name) => {
            const values = headers[name.toLowerCase()]
            if (values === undefined) return undefined
            if (values.length > 1) throw new Error(`${name} sent ${values.length} times: ${JSON.stringify(values)}`)
            return values[0]
          }
        })
      })
    })
    req.on('error', reject)
    req.end(opts.body)
  })
}

/** Every `access-control-*` response header name present. */
export function corsHeaderNames (res: RawResponse): string[] {
  return Object.keys(res.headers).filter((h) => h.startsWith('access-control-'))
}
