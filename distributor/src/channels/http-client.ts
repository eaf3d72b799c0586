// HTTP for the channels that POST to a provider (Slack webhooks, webhooks): undici's Agent (keep-alive pools
// per origin) through its request API, one client per channel, instead of the global fetch. A fetch call
// builds a Request, a Headers list, web streams for both bodies and an AbortSignal chain for every send;
// profiled under load, that was the largest cost per delivered message (issue 17). node:http's ClientRequest
// and IncomingMessage were the next; `npm run bench:http-client` measures this client against node:http in
// the same run (docs/BENCHMARKS.md). A POST here is one request on a pooled connection, its answer read into
// a string, a timer for the deadline and one abort listener.
import { EventEmitter } from 'node:events'
import { Agent } from 'undici'
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

/** Answers longer than this are cut: providers answer `ok` or a short error; a huge body is not kept whole. */
const maxBodyBytes = 64 * 1024

interface Target {
  origin: string
  path: string
  /** Basic credentials from the URL's user info (undici does not read them from the origin). */
  authorization?: string
}

export class HttpClient {
  readonly #agent = new Agent({
    keepAliveTimeout: 4_000,
    // The request's own deadline covers connecting too; undici's 10 s connect cap would end a request
    // earlier than a longer configured deadline (WEBHOOK_TIMEOUT_MS) and report the wrong wait.
    connectTimeout: 0,
    // HTTP/1.1, as node:https spoke: what is tested and measured here (undici 8 offers h2 to TLS servers).
    allowH2: false,
  })

  /** Parsed targets by URL: a channel posts to a few configured URLs, parsed once each. */
  readonly #targets = new Map<string, Target>()

  #target(url: string): Target {
    let target = this.#targets.get(url)
    if (!target) {
      const parsed = new URL(url)
      if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:')
        throw new HttpRequestError('EPROTO', `unsupported protocol ${parsed.protocol}`)
      target = {
        origin: parsed.origin,
        path: `${parsed.pathname}${parsed.search}`,
        ...(parsed.username
          ? {
              authorization: `Basic ${Buffer.from(
                `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`,
              ).toString('base64')}`,
            }
          : {}),
      }
      if (this.#targets.size >= 1000) this.#targets.clear()
      this.#targets.set(url, target)
    }
    return target
  }

  post(url: string | URL, body: string, options: PostOptions): Promise<HttpReply> {
    let target: Target
    try {
      target = this.#target(String(url))
    } catch (error) {
      return Promise.reject(error)
    }
    const { signal } = options
    if (signal?.aborted) return Promise.reject(signal.reason)
    return new Promise<HttpReply>((resolve, reject) => {
      // Why the request was cut, when it was: the deadline or the stop signal (undici only says "aborted").
      let cut: unknown
      // undici takes an EventEmitter as the request's signal: lighter than an AbortController per request.
      const abort = new EventEmitter()
      const stop = (reason: unknown) => {
        if (cut !== undefined) return
        cut = reason
        abort.emit('abort')
      }
      const timer = setTimeout(
        () => stop(new HttpRequestError('ETIMEDOUT', `no answer within ${options.timeoutMs} ms`)),
        options.timeoutMs,
      )
      const forget = signal ? whenAborted(signal, () => stop(signal.reason)) : undefined
      const finish = (error: unknown, reply?: HttpReply) => {
        clearTimeout(timer)
        forget?.()
        if (reply) resolve(reply)
        else reject(cut ?? networkError(error))
      }
      this.#agent
        .request({
          origin: target.origin,
          path: target.path,
          method: 'POST',
          // The URL's credentials unless the caller sends its own (as node:http's `auth` did).
          headers:
            target.authorization &&
            !Object.keys(options.headers).some((name) => name.toLowerCase() === 'authorization')
              ? { ...options.headers, authorization: target.authorization }
              : options.headers,
          body,
          signal: abort,
          // The deadline above covers the whole request; these only must not end it earlier.
          headersTimeout: 0,
          bodyTimeout: 0,
        })
        .then(
          (response) => {
            const chunks: Buffer[] = []
            let size = 0
            response.body.on('data', (chunk: Buffer) => {
              if (size < maxBodyBytes) chunks.push(chunk)
              size += chunk.length
            })
            response.body.on('error', (error) => finish(error))
            response.body.on('end', () => {
              const { headers } = response
              finish(undefined, {
                status: response.statusCode,
                statusText: response.statusText ?? '',
                header: (name) => {
                  const key = name.toLowerCase()
                  const value = Object.hasOwn(headers, key) ? headers[key] : undefined
                  return Array.isArray(value) ? value.join(', ') : value
                },
                body: Buffer.concat(chunks).toString('utf8', 0, Math.min(size, maxBodyBytes)),
              })
            })
          },
          (error: unknown) => finish(error),
        )
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
    void this.#agent.destroy().catch(() => {})
  }
}

/**
 * undici's errors named like the socket errors they are (so the channels' classifiers and the statuses read
 * the same as before): a closed socket is a reset, its own timeouts are timeouts.
 */
const undiciCodes: Readonly<Record<string, string>> = {
  UND_ERR_SOCKET: 'ECONNRESET',
  UND_ERR_CONNECT_TIMEOUT: 'ETIMEDOUT',
  UND_ERR_HEADERS_TIMEOUT: 'ETIMEDOUT',
  UND_ERR_BODY_TIMEOUT: 'ETIMEDOUT',
}

function networkError(error: unknown): Error {
  if (error instanceof HttpRequestError) return error
  const e = error as { code?: string; cause?: { code?: string }; message?: string }
  const code = e.code ?? e.cause?.code ?? 'NETWORK'
  return new HttpRequestError(undiciCodes[code] ?? code, e.message ?? String(error), { cause: error })
}
