// Slack through incoming webhooks with @slack/webhook (v8, fetch-based). Destinations are named in the
// configuration (SLACK_WEBHOOKS, SLACK_WEBHOOK_URL as `default`); a record names one, never a URL. The SDK's
// own retries stay off (Herald retries). One IncomingWebhook per destination, made on first use, sends
// through the channel's pooled HTTP client (http-client.ts) instead of the global fetch; its fetch reads
// Retry-After from the answer.
import type { NotificationRecord } from '@herald/shared/notification'
import { IncomingWebhook } from '@slack/webhook'
import { parseRetryAfter } from '../backoff.ts'
import { type Channel, DeliveryError, type SendResult } from './channel.ts'
import { HttpClient } from './http-client.ts'
import { isRetryableStatus, networkErrorCodes } from './http-status.ts'

export interface SlackOptions {
  webhooks: Readonly<Record<string, string>>
  timeoutMs?: number
}

export function classifySlackError(error: unknown, retryAfterMs?: number): DeliveryError {
  if (error instanceof DeliveryError) return error
  const e = error as {
    statusCode?: number
    body?: string
    original?: { code?: string; cause?: { code?: string } }
    message?: string
  }
  const options = { cause: error, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) }
  const status = e.statusCode
  if (status === undefined) {
    const code = e.original?.code ?? e.original?.cause?.code
    const label = code && networkErrorCodes.has(code) ? code : 'NETWORK'
    return new DeliveryError(
      'retryable',
      `SLACK_${label}`,
      `Slack unreachable (${e.message ?? String(error)})`,
      options,
    )
  }
  const text = `${status} ${e.body ?? ''}`.trim()
  if (isRetryableStatus(status)) {
    return new DeliveryError('retryable', `SLACK_${status}`, `Slack temporary failure (${text})`, options)
  }
  // 403 invalid_token / action_prohibited, 404 no_service / channel_not_found, 410 channel_is_archived:
  // the webhook itself is broken; every message to it fails until someone fixes the configuration.
  if (status === 403 || status === 404 || status === 410) {
    return new DeliveryError('provider', `SLACK_${status}`, `Slack webhook rejected (${text})`, options)
  }
  return new DeliveryError('permanent', `SLACK_${status}`, `Slack refused the message (${text})`, options)
}

interface Destination {
  webhook: IncomingWebhook
  /**
   * Retry-After of the destination's latest answer. Read right after a failed send: the scheduler sends one
   * message per recipient (the destination) at a time, so it is that send's answer.
   */
  retryAfter: string | null
}

export function createSlackChannel(options: SlackOptions): Channel {
  const known = (name: string) => Object.hasOwn(options.webhooks, name)
  const timeoutMs = options.timeoutMs ?? 15_000
  const client = new HttpClient()
  // Per stop signal (the distributor passes the same one to every send), the destinations' webhooks.
  const bySignal = new WeakMap<AbortSignal, Map<string, Destination>>()
  const destination = (name: string, url: string, signal: AbortSignal): Destination => {
    let webhooks = bySignal.get(signal)
    if (!webhooks) {
      webhooks = new Map()
      bySignal.set(signal, webhooks)
    }
    let entry = webhooks.get(name)
    if (!entry) {
      const fetchPooled = client.fetchFor(timeoutMs)
      const made: Destination = {
        retryAfter: null,
        webhook: new IncomingWebhook(url, {
          // The deadline is the client's (one timer per request), not an AbortSignal.timeout per send.
          timeout: 0,
          retryConfig: { retries: 0 },
          fetch: async (input, init) => {
            const response = await fetchPooled(input, { ...init, signal })
            made.retryAfter = response.headers.get('retry-after')
            return response
          },
        }),
      }
      entry = made
      webhooks.set(name, entry)
    }
    return entry
  }
  return {
    name: 'slack',
    // Each webhook is revoked or archived on its own: failures count against the destination's breaker.
    destinationOf: (record) => (known(record.to) ? record.to : undefined),
    async send(record: NotificationRecord, signal: AbortSignal): Promise<SendResult> {
      const url = known(record.to) ? options.webhooks[record.to] : undefined
      if (!url) {
        throw new DeliveryError(
          'permanent',
          'SLACK_UNKNOWN_DESTINATION',
          `no Slack destination named "${record.to}"`,
        )
      }
      const target = destination(record.to, url, signal)
      try {
        await target.webhook.send({ text: record.message })
        return {}
      } catch (error) {
        signal.throwIfAborted()
        throw classifySlackError(error, parseRetryAfter(target.retryAfter))
      }
    },
    async close() {
      client.close()
    },
  }
}
