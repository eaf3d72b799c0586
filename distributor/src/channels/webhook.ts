// Webhooks: a JSON POST to a destination named in WEBHOOK_DESTINATIONS (a record names one, never a URL),
// signed with that destination's secret so the receiver can tell Herald's requests from anyone else's.
//
// Signature (documented in the README for receivers):
//   X-Herald-Timestamp: <unix seconds>
//   X-Herald-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
import { createHmac } from 'node:crypto'
import type { WebhookDestination } from '@herald/shared/config'
import type { NotificationRecord } from '@herald/shared/notification'
import { parseRetryAfter } from '../backoff.ts'
import { type Channel, DeliveryError, type SendResult } from './channel.ts'
import { HttpClient } from './http-client.ts'
import { isRetryableStatus, networkErrorCodes } from './http-status.ts'

export interface WebhookOptions {
  destinations: Readonly<Record<string, Readonly<WebhookDestination>>>
  /** Per request, from connecting to the end of the answer (WEBHOOK_TIMEOUT_MS). */
  timeoutMs?: number
  now?: () => number
}

/** Version of the JSON body; a receiver should refuse a higher one it does not know. */
export const webhookBodyVersion = 1

/** The signed content: the timestamp, a dot, and the raw body exactly as sent. */
export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`
}

/** The body Herald POSTs: the notification and, when the record carries one, the alarm event. */
export function webhookBody(record: NotificationRecord): string {
  const { id, channel, to, subject, message, createdAt, expiresAt, event } = record
  return JSON.stringify({
    v: webhookBodyVersion,
    notification: {
      id,
      channel,
      to,
      ...(subject !== undefined ? { subject } : {}),
      message,
      createdAt,
      ...(expiresAt !== undefined ? { expiresAt } : {}),
    },
    ...(event !== undefined ? { event } : {}),
  })
}

/**
 * An HTTP status from a destination: 2xx is delivered (not an error); 408, 425, 429 and 5xx are worth another
 * attempt; 401, 403, 404 and 410 mean the destination itself is broken (credentials, a removed or revoked
 * endpoint), so every message to it would fail: its breaker opens; a 3xx means the configured URL moved
 * (redirects are not followed: the signed body must not go elsewhere); any other 4xx refuses this payload.
 */
export function classifyWebhookStatus(status: number, detail = '', retryAfterMs?: number): DeliveryError {
  const text = `${status}${detail ? ` ${detail}` : ''}`
  const options = retryAfterMs !== undefined ? { retryAfterMs } : {}
  if (isRetryableStatus(status))
    return new DeliveryError('retryable', `WEBHOOK_${status}`, `webhook temporary failure (${text})`, options)
  if (status === 401 || status === 403 || status === 404 || status === 410)
    return new DeliveryError('provider', `WEBHOOK_${status}`, `webhook destination rejects Herald (${text})`)
  if (status >= 300 && status < 400)
    return new DeliveryError(
      'provider',
      `WEBHOOK_${status}`,
      `webhook destination redirects (${text}); redirects are not followed, fix its URL`,
    )
  return new DeliveryError('permanent', `WEBHOOK_${status}`, `webhook refused the message (${text})`)
}

/**
 * A failure without an HTTP answer: a timeout or a network error, both retryable. Reads the HTTP client's
 * errors (their `code`, ETIMEDOUT at the deadline) and fetch's (a TimeoutError, or a TypeError whose cause
 * has the code).
 */
export function classifyWebhookError(error: unknown, timeoutMs: number): DeliveryError {
  if (error instanceof DeliveryError) return error
  const e = error as {
    name?: string
    code?: string
    message?: string
    cause?: { code?: string; name?: string }
  }
  if (e.name === 'TimeoutError' || e.cause?.name === 'TimeoutError' || e.code === 'ETIMEDOUT')
    return new DeliveryError(
      'retryable',
      'WEBHOOK_TIMEOUT',
      `webhook did not answer within ${timeoutMs} ms`,
      {
        cause: error,
      },
    )
  const code = e.code ?? e.cause?.code
  const label = code && networkErrorCodes.has(code) ? code : 'NETWORK'
  return new DeliveryError(
    'retryable',
    `WEBHOOK_${label}`,
    `webhook unreachable (${code ?? e.message ?? String(error)})`,
    { cause: error },
  )
}

/** The first bytes of an error answer, for the status and the dead letter (never the whole body). */
function excerpt(body: string): string {
  return body.replaceAll(/\s+/g, ' ').trim().slice(0, 200)
}

export function createWebhookChannel(options: WebhookOptions): Channel {
  const timeoutMs = options.timeoutMs ?? 10_000
  const now = options.now ?? Date.now
  // Pooled keep-alive connections, no fetch per send (see http-client.ts); redirects are never followed.
  const client = new HttpClient()
  return {
    name: 'webhook',
    destinationOf: (record) => (Object.hasOwn(options.destinations, record.to) ? record.to : undefined),
    async send(record: NotificationRecord, signal: AbortSignal): Promise<SendResult> {
      signal.throwIfAborted()
      const destination = Object.hasOwn(options.destinations, record.to)
        ? options.destinations[record.to]
        : undefined
      if (!destination) {
        throw new DeliveryError(
          'permanent',
          'WEBHOOK_UNKNOWN_DESTINATION',
          `no webhook destination named "${record.to}"`,
        )
      }
      const body = webhookBody(record)
      const timestamp = String(Math.floor(now() / 1000))
      let reply: Awaited<ReturnType<HttpClient['post']>>
      try {
        reply = await client.post(destination.url, body, {
          headers: {
            'content-type': 'application/json',
            'user-agent': 'Herald-Webhook/1',
            'x-herald-id': record.id,
            'x-herald-timestamp': timestamp,
            'x-herald-signature': webhookSignature(destination.secret, timestamp, body),
          },
          signal,
          timeoutMs,
        })
      } catch (error) {
        signal.throwIfAborted()
        throw classifyWebhookError(error, timeoutMs)
      }
      if (reply.status >= 200 && reply.status < 300) return {}
      const retryAfterMs = parseRetryAfter(reply.header('retry-after') ?? null)
      throw classifyWebhookStatus(reply.status, excerpt(reply.body), retryAfterMs)
    },
    async close() {
      client.close()
    },
  }
}
