// Slack through incoming webhooks with @slack/webhook (v8, fetch-based). Destinations are named in the
// configuration (SLACK_WEBHOOKS, SLACK_WEBHOOK_URL as `default`); a record names one, never a URL. The SDK's
// own retries stay off (Herald retries), and its fetch is wrapped to read Retry-After from the response.
import type { NotificationRecord } from '@herald/shared/notification'
import { IncomingWebhook } from '@slack/webhook'
import { parseRetryAfter } from '../backoff.ts'
import { type Channel, DeliveryError, type SendResult } from './channel.ts'
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
    original?: { cause?: { code?: string } }
    message?: string
  }
  const options = { cause: error, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) }
  const status = e.statusCode
  if (status === undefined) {
    const code = e.original?.cause?.code
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

export function createSlackChannel(options: SlackOptions): Channel {
  const known = (name: string) => Object.hasOwn(options.webhooks, name)
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
      let retryAfter: string | null = null
      const webhook = new IncomingWebhook(url, {
        timeout: options.timeoutMs ?? 15_000,
        retryConfig: { retries: 0 },
        fetch: async (input, init) => {
          const response = await fetch(input, {
            ...init,
            signal: AbortSignal.any([signal, ...(init?.signal ? [init.signal] : [])]),
          })
          retryAfter = response.headers.get('retry-after')
          return response
        },
      })
      try {
        await webhook.send({ text: record.message })
        return {}
      } catch (error) {
        signal.throwIfAborted()
        throw classifySlackError(error, parseRetryAfter(retryAfter))
      }
    },
    async close() {},
  }
}
