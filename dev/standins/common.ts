// What the three provider stand-ins share: the record of received messages, fault injection, and the
// HTTP inspection and control endpoints (GET/DELETE /messages, GET/PUT/DELETE /faults).
import { appendFileSync, mkdirSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { join } from 'node:path'

export interface Faults {
  /** Share of requests (0..1) that fail with `status`. */
  failRate?: number
  /** The next N requests fail with `status` (deterministic; handy in tests). */
  failNext?: number
  /** HTTP status of an injected failure (500, 503, 429, ...); SMTP maps it to a 4xx reply. */
  status?: number
  /** Seconds sent as Retry-After with an injected failure. */
  retryAfter?: number
  /** Recipients that always get a permanent error (SMTP address, phone number, Slack webhook path). */
  permanentRecipients?: string[]
  /** Provider code for permanent errors (Twilio 21211 or 21610, Slack 404 or 410). */
  permanentCode?: number
  /** Extra delay before every answer. */
  latencyMs?: number
  /** Reject Herald's credentials (Twilio 401/20003, SMTP 535, Slack 403). */
  authFail?: boolean
}

export interface ReceivedMessage {
  seq: number
  at: string
  provider: 'smtp' | 'twilio' | 'slack'
  to: string
  from?: string
  subject?: string
  text: string
  messageId?: string
  /** The Herald notification id when the provider message carries it (SMTP Message-ID <id@herald>). */
  heraldId?: string
  size: number
}

export class StandInState {
  readonly provider: ReceivedMessage['provider']
  #faults: Faults = {}
  #messages: ReceivedMessage[] = []
  #seq = 0
  readonly #recordFile: string | undefined
  readonly #quiet: boolean

  constructor(
    provider: ReceivedMessage['provider'],
    options: { faults?: Faults; recordDir?: string; quiet?: boolean },
  ) {
    this.provider = provider
    this.#faults = { ...(options.faults ?? {}) }
    this.#quiet = options.quiet ?? false
    if (options.recordDir) {
      mkdirSync(options.recordDir, { recursive: true })
      this.#recordFile = join(options.recordDir, `${provider}.jsonl`)
    }
  }

  get faults(): Faults {
    return { ...this.#faults }
  }

  setFaults(faults: Faults): void {
    this.#faults = { ...faults }
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
    if (this.#recordFile) appendFileSync(this.#recordFile, `${JSON.stringify(entry)}\n`)
    if (!this.#quiet) {
      console.log(
        `[${this.provider}] #${entry.seq} to ${entry.to}: ${entry.subject ?? entry.text.slice(0, 60).replaceAll('\n', ' ')}`,
      )
    }
    return entry
  }

  /** Whether this request should fail now (consumes one `failNext`). */
  shouldFail(): boolean {
    const f = this.#faults
    if ((f.failNext ?? 0) > 0) {
      this.#faults = { ...f, failNext: (f.failNext ?? 0) - 1 }
      return true
    }
    return (f.failRate ?? 0) > 0 && Math.random() < (f.failRate ?? 0)
  }

  isPermanent(recipient: string): boolean {
    return (this.#faults.permanentRecipients ?? []).some((r) => r.toLowerCase() === recipient.toLowerCase())
  }

  async delay(): Promise<void> {
    const ms = this.#faults.latencyMs ?? 0
    if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms))
  }
}

/** Faults from the environment: e.g. TWILIO_STANDIN_FAULTS='{"failRate":0.1,"status":503}'. */
export function faultsFromEnv(name: string): Faults {
  const raw = process.env[name]
  if (!raw) return {}
  try {
    return JSON.parse(raw) as Faults
  } catch {
    throw new Error(`${name} must be JSON, e.g. {"failRate":0.1,"status":503}`)
  }
}

export function readBody(req: IncomingMessage, limit = 1024 * 1024): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        reject(new Error('body too large'))
        req.destroy()
        return
      }
      chunks.push(chunk)
    })
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

/** Handles /messages and /faults; returns false for any other path. */
export async function handleControl(
  req: IncomingMessage,
  res: ServerResponse,
  state: StandInState,
): Promise<boolean> {
  const path = (req.url ?? '/').split('?')[0]
  if (path === '/messages') {
    if (req.method === 'GET') sendJson(res, 200, state.messages())
    else if (req.method === 'DELETE') {
      state.clear()
      sendJson(res, 200, { cleared: true })
    } else sendJson(res, 405, { error: 'method_not_allowed' })
    return true
  }
  if (path === '/faults') {
    if (req.method === 'GET') sendJson(res, 200, state.faults)
    else if (req.method === 'PUT') {
      try {
        const faults = JSON.parse((await readBody(req)).toString('utf8')) as Faults
        if (typeof faults !== 'object' || faults === null || Array.isArray(faults))
          throw new Error('not an object')
        state.setFaults(faults)
        sendJson(res, 200, state.faults)
      } catch (error) {
        sendJson(res, 400, { error: 'invalid_faults', message: (error as Error).message })
      }
    } else if (req.method === 'DELETE') {
      state.setFaults({})
      sendJson(res, 200, {})
    } else sendJson(res, 405, { error: 'method_not_allowed' })
    return true
  }
  return false
}

export interface StandIn {
  readonly port: number
  readonly url: string
  messages(): ReceivedMessage[]
  clear(): void
  setFaults(faults: Faults): void
  close(): Promise<void>
}
