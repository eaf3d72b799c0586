// What the three provider stand-ins share: the record of received messages, fault injection, and the
// HTTP inspection and control endpoints (GET/DELETE /messages, GET/PUT/DELETE /faults, GET /health).
// Only node: modules here: the sandbox image installs smtp-server and nothing else.
import { appendFileSync, mkdirSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'

/** A recipient that always gets a permanent error, optionally with its own provider code. */
export interface PermanentRecipient {
  recipient: string
  /** Twilio 21211/21610/21614, SMTP 550/551/552/553, Slack 400/403/404/410; else `permanentCode`. */
  code?: number
}

export interface Faults {
  /** Share of requests (0..1) that fail with `status`. */
  failRate?: number
  /** The next N requests fail with `status` (deterministic; handy in tests). */
  failNext?: number
  /** Recipients whose requests fail with `status` (a transient error) for as long as they are listed. */
  failRecipients?: string[]
  /** HTTP status of an injected failure (500, 503, 429, ...); SMTP maps it to a 4xx reply. */
  status?: number
  /** Seconds sent as Retry-After with an injected failure. */
  retryAfter?: number
  /** Recipients that always get a permanent error (SMTP address, phone number, Slack webhook path). */
  permanentRecipients?: Array<string | PermanentRecipient>
  /** Provider code for permanent errors (Twilio 21211 or 21610, Slack 404 or 410, SMTP 550). */
  permanentCode?: number
  /** Extra delay before every answer. */
  latencyMs?: number
  /** Reject Herald's credentials (Twilio 401/20003, SMTP 535, Slack 403). */
  authFail?: boolean
  /** Seed for `failRate`'s random draws: the same seed fails the same requests. */
  seed?: number
}

export interface ReceivedMessage {
  seq: number
  at: string
  provider: 'smtp' | 'twilio' | 'slack' | 'webhook'
  to: string
  from?: string
  subject?: string
  text: string
  messageId?: string
  /** The Herald notification id when the provider message carries it (SMTP Message-ID <id@herald>). */
  heraldId?: string
  size: number
  /** Webhook only: the request headers (lower-case names) and the raw body, as received. */
  headers?: Record<string, string>
  body?: string
}

export interface StandInOptions {
  /** 0 for any free port; the bound port is on the returned stand-in. */
  port?: number
  /** Interface to listen on (127.0.0.1; 0.0.0.0 in a container). */
  host?: string
  faults?: Faults
  /** Appends every received message to `<recordDir>/<provider>.jsonl`. */
  recordDir?: string
  /** No log line per message. */
  quiet?: boolean
  /** Keeps only the newest N messages in memory (all by default); the record file keeps everything. */
  maxMessages?: number
}

export interface StandIn {
  readonly provider: ReceivedMessage['provider']
  readonly port: number
  readonly url: string
  messages(): ReceivedMessage[]
  clear(): void
  faults(): Faults
  setFaults(faults: Faults): void
  close(): Promise<void>
}

const faultKeys = [
  'failRate',
  'failNext',
  'failRecipients',
  'status',
  'retryAfter',
  'permanentRecipients',
  'permanentCode',
  'latencyMs',
  'authFail',
  'seed',
] as const

const isInteger = (v: unknown, min: number, max: number): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max
const isNumber = (v: unknown, min: number, max: number): v is number =>
  typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max

/** Checks a faults object (from JSON, the environment or code); throws a readable error when it is wrong. */
export function parseFaults(value: unknown): Faults {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error('faults must be a JSON object, e.g. {"failNext":1,"status":503}')
  }
  const input = value as Record<string, unknown>
  const unknown = Object.keys(input).filter((k) => !(faultKeys as readonly string[]).includes(k))
  if (unknown.length > 0)
    throw new Error(`unknown fault ${unknown.join(', ')}; known: ${faultKeys.join(', ')}`)
  const faults: Faults = {}
  const wrong = (key: string, what: string) => new Error(`${key} must be ${what}`)
  const { failRate, failNext, status, retryAfter, permanentRecipients, permanentCode, latencyMs } = input
  if (failRate !== undefined) {
    if (!isNumber(failRate, 0, 1)) throw wrong('failRate', 'a number from 0 to 1')
    faults.failRate = failRate
  }
  if (failNext !== undefined) {
    if (!isInteger(failNext, 0, 1e9)) throw wrong('failNext', 'a whole number >= 0')
    faults.failNext = failNext
  }
  if (status !== undefined) {
    if (!isInteger(status, 400, 599)) throw wrong('status', 'an HTTP error status (400-599)')
    faults.status = status
  }
  if (retryAfter !== undefined) {
    if (!isInteger(retryAfter, 0, 86_400)) throw wrong('retryAfter', 'whole seconds (0-86400)')
    faults.retryAfter = retryAfter
  }
  if (permanentCode !== undefined) {
    if (!isInteger(permanentCode, 100, 99_999)) throw wrong('permanentCode', 'a provider error code')
    faults.permanentCode = permanentCode
  }
  if (latencyMs !== undefined) {
    if (!isNumber(latencyMs, 0, 600_000)) throw wrong('latencyMs', 'milliseconds (0-600000)')
    faults.latencyMs = latencyMs
  }
  if (input.authFail !== undefined) {
    if (typeof input.authFail !== 'boolean') throw wrong('authFail', 'true or false')
    faults.authFail = input.authFail
  }
  if (input.seed !== undefined) {
    if (!isInteger(input.seed, 0, 2 ** 32 - 1)) throw wrong('seed', 'a whole number (0-4294967295)')
    faults.seed = input.seed
  }
  if (input.failRecipients !== undefined) {
    const list = input.failRecipients
    if (!Array.isArray(list) || !list.every((r) => typeof r === 'string'))
      throw wrong('failRecipients', 'a list of recipients (strings)')
    faults.failRecipients = list
  }
  if (permanentRecipients !== undefined) {
    const what = 'a list of recipients (strings or {"recipient": "...", "code": 21610})'
    if (!Array.isArray(permanentRecipients)) throw wrong('permanentRecipients', what)
    faults.permanentRecipients = permanentRecipients.map((entry: unknown) => {
      if (typeof entry === 'string') return entry
      const e = entry as Partial<PermanentRecipient> | null
      if (typeof e !== 'object' || e === null || typeof e.recipient !== 'string')
        throw wrong('permanentRecipients', what)
      if (e.code !== undefined && !isInteger(e.code, 100, 99_999))
        throw wrong('permanentRecipients[].code', 'a provider error code')
      return e.code === undefined ? { recipient: e.recipient } : { recipient: e.recipient, code: e.code }
    })
  }
  return faults
}

/**
 * Faults from the environment: the stand-in's own variable (e.g. TWILIO_STANDIN_FAULTS), else
 * STANDIN_FAULTS for all three. JSON, e.g. '{"failRate":0.1,"status":503}'.
 */
export function faultsFromEnv(name: string, fallback = 'STANDIN_FAULTS'): Faults {
  const source = process.env[name] ? name : process.env[fallback] ? fallback : undefined
  if (!source) return {}
  try {
    return parseFaults(JSON.parse(process.env[source] ?? ''))
  } catch (error) {
    throw new Error(`${source}: ${(error as Error).message}`)
  }
}

/** xorshift32: a small deterministic generator for seeded `failRate` draws. */
function randomFrom(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x / 2 ** 32
  }
}

export class StandInState {
  readonly provider: ReceivedMessage['provider']
  #faults: Faults = {}
  #random: () => number = Math.random
  #messages: ReceivedMessage[] = []
  #seq = 0
  readonly #recordFile: string | undefined
  readonly #quiet: boolean
  readonly #maxMessages: number

  constructor(provider: ReceivedMessage['provider'], options: StandInOptions) {
    this.provider = provider
    this.setFaults(options.faults ?? {})
    this.#quiet = options.quiet ?? false
    this.#maxMessages = options.maxMessages ?? Number.POSITIVE_INFINITY
    if (options.recordDir) {
      mkdirSync(options.recordDir, { recursive: true })
      this.#recordFile = join(options.recordDir, `${provider}.jsonl`)
    }
  }

  get faults(): Faults {
    return structuredClone(this.#faults)
  }

  /** Replaces the faults (validated: a wrong value throws and leaves the current ones). */
  setFaults(faults: Faults): void {
    this.#faults = parseFaults(faults)
    this.#random = this.#faults.seed === undefined ? Math.random : randomFrom(this.#faults.seed)
  }

  messages(): ReceivedMessage[] {
    return [...this.#messages]
  }

  clear(): void {
    this.#messages = []
  }

  record(message: Omit<ReceivedMessage, 'seq' | 'at' | 'provider'>): ReceivedMessage {
    const entry: ReceivedMessage = {
      seq: ++this.#seq,
      at: new Date().toISOString(),
      provider: this.provider,
      ...message,
    }
    this.#messages.push(entry)
    if (this.#messages.length > this.#maxMessages) this.#messages.shift()
    if (this.#recordFile) {
      try {
        appendFileSync(this.#recordFile, `${JSON.stringify(entry)}\n`)
      } catch (error) {
        console.error(`[${this.provider}] cannot append to ${this.#recordFile}: ${(error as Error).message}`)
      }
    }
    if (!this.#quiet) {
      const what = (entry.subject ?? entry.text).replaceAll(/\s+/g, ' ').slice(0, 60)
      console.log(`[${this.provider}] #${entry.seq} to ${entry.to}: ${what}`)
    }
    return entry
  }

  /**
   * Whether this request should fail now: its recipient is in `failRecipients`, else it consumes one
   * `failNext`, else it draws against `failRate`.
   */
  shouldFail(recipient?: string): boolean {
    const f = this.#faults
    const wanted = recipient?.toLowerCase()
    if (wanted !== undefined && f.failRecipients?.some((r) => r.toLowerCase() === wanted)) return true
    if ((f.failNext ?? 0) > 0) {
      this.#faults = { ...f, failNext: (f.failNext ?? 0) - 1 }
      return true
    }
    return (f.failRate ?? 0) > 0 && this.#random() < (f.failRate ?? 0)
  }

  /**
   * The permanent error for a recipient: `null` when it is not listed, else the entry's code, else
   * `permanentCode` (may be undefined: the stand-in's default).
   */
  permanentError(recipient: string): { code: number | undefined } | null {
    const wanted = recipient.toLowerCase()
    for (const entry of this.#faults.permanentRecipients ?? []) {
      const e = typeof entry === 'string' ? { recipient: entry } : entry
      if (e.recipient.toLowerCase() === wanted) return { code: e.code ?? this.#faults.permanentCode }
    }
    return null
  }

  isPermanent(recipient: string): boolean {
    return this.permanentError(recipient) !== null
  }

  /** The Retry-After header of an injected failure, when one is configured. */
  retryAfterHeader(): Record<string, string> {
    const seconds = this.#faults.retryAfter
    return seconds === undefined ? {} : { 'retry-after': String(seconds) }
  }

  async delay(): Promise<void> {
    const ms = this.#faults.latencyMs ?? 0
    if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms))
  }
}

/** An error from readBody when the body is over the limit. */
export class BodyTooLargeError extends Error {}

export function readBody(req: IncomingMessage, limit = 1024 * 1024): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        // Stop keeping it but drain the rest, so an answer can still be written.
        req.off('data', onData)
        req.resume()
        reject(new BodyTooLargeError(`body over ${limit} bytes`))
        return
      }
      chunks.push(chunk)
    }
    req.on('data', onData)
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers })
  res.end(JSON.stringify(body))
}

/** GET /messages?since=<seq>&to=<recipient>: the received messages, oldest first. */
function listMessages(req: IncomingMessage, state: StandInState): ReceivedMessage[] {
  const query = new URL(req.url ?? '/', 'http://stand-in').searchParams
  const since = Number(query.get('since') ?? 0)
  const to = query.get('to')
  return state
    .messages()
    .filter((m) => (Number.isFinite(since) ? m.seq > since : true) && (to === null || m.to === to))
}

/** Handles /messages, /faults and /health; returns false for any other path. */
export async function handleControl(
  req: IncomingMessage,
  res: ServerResponse,
  state: StandInState,
): Promise<boolean> {
  const path = (req.url ?? '/').split('?')[0]
  const notAllowed = (allow: string) =>
    sendJson(res, 405, { error: 'method_not_allowed', allow }, { allow: allow.replaceAll(' ', ', ') })
  if (path === '/messages') {
    if (req.method === 'GET') sendJson(res, 200, listMessages(req, state))
    else if (req.method === 'DELETE') {
      state.clear()
      sendJson(res, 200, { cleared: true })
    } else notAllowed('GET DELETE')
    return true
  }
  if (path === '/faults') {
    if (req.method === 'GET') sendJson(res, 200, state.faults)
    else if (req.method === 'PUT') {
      try {
        state.setFaults(JSON.parse((await readBody(req, 64 * 1024)).toString('utf8')) as Faults)
        sendJson(res, 200, state.faults)
      } catch (error) {
        sendJson(res, 400, { error: 'invalid_faults', message: (error as Error).message })
      }
    } else if (req.method === 'DELETE') {
      state.setFaults({})
      sendJson(res, 200, {})
    } else notAllowed('GET PUT DELETE')
    return true
  }
  if (path === '/health' && req.method === 'GET') {
    sendJson(res, 200, { ok: true, provider: state.provider, received: state.messages().length })
    return true
  }
  return false
}

/**
 * An HTTP server that never falls over on what a client sends: a handler that throws gets `onError`'s
 * answer (or the connection closed when one was already started), unparseable bytes get a bare 400.
 */
export function createSafeServer(
  handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
  onError: (res: ServerResponse, error: unknown) => void,
): Server {
  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      try {
        if (!res.headersSent && !res.destroyed) onError(res, error)
        else res.destroy()
      } catch {
        res.destroy()
      }
    })
  })
  server.on('clientError', (_error, socket) => {
    if (socket.writable)
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
    else socket.destroy()
  })
  return server
}

/** Listens and resolves with the bound port; a port in use is a readable error naming the stand-in. */
export function listen(server: Server, port: number, host: string, label: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'EADDRINUSE'
          ? new Error(`${label}: port ${port} on ${host} is already in use`, { cause: error })
          : error,
      )
    }
    server.once('error', onError)
    server.listen(port, host, () => {
      server.off('error', onError)
      server.on('error', (error) => console.error(`[${label}] ${error.message}`))
      resolve((server.address() as AddressInfo).port)
    })
  })
}

/** Stops listening and drops open connections (kept-alive clients would otherwise hold close up). */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve()
    server.close(() => resolve())
    server.closeAllConnections()
  })
}

/** The URL a local client uses for a stand-in listening on `host`. */
export function localUrl(scheme: string, host: string, port: number): string {
  const reachable = host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host
  return `${scheme}://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`
}
