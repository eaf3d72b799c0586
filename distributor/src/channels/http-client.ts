// HTTP for the channels that POST to a provider (Slack webhooks): node:http(s) with keep-alive agents, one
// client per channel, instead of the global fetch. A fetch call builds a Request, a Headers list, web
// streams for both bodies and an AbortSignal chain for every send; profiled under load, that was the largest
// cost per delivered message (issue 17). A POST here is one request on a pooled connection, its answer read
// into a string, a timer for the deadline and one abort listener.
import http from 'node:http'
import https from 'node:https'
import { whenAborted } from '../abort.ts'

export interface HttpReply {
  status: number
  statusText: string
  /** Header names in lower case; repeated headers joined with ", ". */
  header(name: string): string | undefined
  body: string
}

export interface PostOptions {
  headers: Readonly<Record<string, string>>
  /** Aborts the request (the distributor stops): it rejects with the signal's reason. */
  signal?: AbortSignal
  /** Whole-request deadline in ms: past it the connection is dropped and the request fails with ETIMEDOUT. */
  timeoutMs: number
}

/** A failure before any answer, with the code of the socket error (ECONNREFUSED, ETIMEDOUT, ...). */
export class HttpRequestError extends Error {
  readonly code: string
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'HttpRequestError'
    this.code = code
  }
}

/** Answers longer than this are cut: providers answer `ok` or a short error; a huge body is not read whole. */
const maxBodyBytes = 64 * 1024

export class HttpClient {
  readonly #http = new http.Agent({ keepAlive: true, scheduling: 'lifo' })
  readonly #https = new https.Agent({ keepAlive: true, scheduling: 'lifo' })

  /** Parsed targets by URL: a channel posts to a few configured URLs, parsed once each. */
  readonly #targets = new Map<string, http.RequestOptions & { secure: boolean }>()

  #target(url: string): http.RequestOptions & { secure: boolean } {
    let target = this.#targets.get(url)
    if (!target) {
      const parsed = new URL(url)
      const secure = parsed.protocol === 'https:'
      if (!secure && parsed.protocol !== 'http:')
        throw new HttpRequestError('EPROTO', `unsupported protocol ${parsed.protocol}`)
      target = {
        secure,
        protocol: parsed.protocol,
        hostname: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: parsed.port || (secure ? 443 : 80),
        path: `${parsed.pathname}${parsed.search}`,
        ...(parsed.username
          ? { auth: `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}` }
          : {}),
      }
      if (this.#targets.size >= 1000) this.#targets.clear()
      this.#targets.set(url, target)
    }
    return target
  }

  post(url: string | URL, body: string, options: PostOptions): Promise<HttpReply> {
    let target: http.RequestOptions & { secure: boolean }
    try {
      target = this.#target(String(url))
    } catch (error) {
      return Promise.reject(error)
    }
    const { secure } = target
    const { signal } = options
    if (signal?.aborted) return Promise.reject(signal.reason)
    return new Promise<HttpReply>((resolve, reject) => {
      let settled = false
      const finish = (error: unknown, reply?: HttpReply) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        forget?.()
        if (reply) resolve(reply)
        else reject(error)
      }
      const request = (secure ? https : http).request(
        {
          protocol: target.protocol,
          hostname: target.hostname,
          port: target.port,
          path: target.path,
          ...(target.auth ? { auth: target.auth } : {}),
          method: 'POST',
          agent: secure ? this.#https : this.#http,
          headers: { ...options.headers, 'content-length': Buffer.byteLength(body) },
        },
        (response) => {
          const chunks: Buffer[] = []
          let size = 0
          response.on('data', (chunk: Buffer) => {
            if (size < maxBodyBytes) chunks.push(chunk)
            size += chunk.length
          })
          response.on('error', (error) => finish(networkError(error)))
          response.on('end', () => {
            const headers = response.headers
            finish(undefined, {
              status: response.statusCode ?? 0,
              statusText: response.statusMessage ?? '',
              header: (name) => {
                const value = headers[name.toLowerCase()]
                return Array.isArray(value) ? value.join(', ') : value
              },
              body: Buffer.concat(chunks).toString('utf8', 0, Math.min(size, maxBodyBytes)),
            })
          })
        },
      )
      const timer = setTimeout(() => {
        request.destroy(new HttpRequestError('ETIMEDOUT', `no answer within ${options.timeoutMs} ms`))
      }, options.timeoutMs)
      const onAbort = () => {
        request.destroy()
        finish(signal?.reason)
      }
      const forget = signal ? whenAborted(signal, onAbort) : undefined
      request.on('error', (error) => finish(networkError(error)))
      request.end(body)
    })
  }

  /**
   * A `fetch` for SDKs that take one (@slack/webhook): POST with a string body only. Its answer is a small
   * object with what a fetch Response offers for reading an answer (ok, status, statusText, headers.get,
   * text, json), not a web Response: building one (headers list, body stream) cost more per message than
   * the request itself. Its signal (if any) aborts the request like `post`'s.
   */
  fetchFor(timeoutMs: number): typeof fetch {
    return async (input, init) => {
      const url = input instanceof Request ? input.url : input
      if ((init?.method ?? 'GET').toUpperCase() !== 'POST' || typeof init?.body !== 'string')
        throw new TypeError('this client sends POST requests with a string body only')
      const given = init.headers
      let headers: Record<string, string> = {}
      if (given === undefined || Array.isArray(given) || given instanceof Headers)
        new Headers(given).forEach((value, name) => {
          headers[name] = value
        })
      else headers = given as Record<string, string>
      const reply = await this.post(url, init.body, {
        headers,
        timeoutMs,
        ...(init.signal ? { signal: init.signal } : {}),
      })
      const answer: Pick<Response, 'ok' | 'status' | 'statusText' | 'url' | 'text' | 'json'> & {
        headers: Pick<Headers, 'get' | 'has'>
      } = {
        ok: reply.status >= 200 && reply.status < 300,
        status: reply.status,
        statusText: reply.statusText,
        url: String(url),
        headers: {
          get: (name) => reply.header(name) ?? null,
          has: (name) => reply.header(name) !== undefined,
        },
        text: async () => reply.body,
        json: async () => JSON.parse(reply.body),
      }
      return answer as Response
    }
  }

  /** Closes the pooled connections. */
  close(): void {
    this.#http.destroy()
    this.#https.destroy()
  }
}

function networkError(error: Error & { code?: string }): Error {
  if (error instanceof HttpRequestError) return error
  return new HttpRequestError(error.code ?? 'NETWORK', error.message, { cause: error })
}
