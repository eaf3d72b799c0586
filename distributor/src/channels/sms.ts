// SMS through Twilio's REST API with the official SDK. TWILIO_API_URL points the SDK at another base URL
// (the local stand-in); the SDK's RestException carries no headers, so Retry-After is read from the
// response by a thin wrapper around the SDK's own HTTP client.
import { AsyncLocalStorage } from 'node:async_hooks'
import type { NotificationRecord } from '@herald/shared/notification'
import twilio from 'twilio'
import { parseRetryAfter } from '../backoff.ts'
import { type Channel, DeliveryError, type SendResult } from './channel.ts'
import { isRetryableStatus, networkErrorCodes } from './http-status.ts'

export interface SmsOptions {
  accountSid: string
  authToken: string
  from: string
  /** Base URL replacing https://api.twilio.com (e.g. http://127.0.0.1:4010 for the stand-in). */
  apiUrl?: string
  timeoutMs?: number
}

/** Twilio error codes that mean "this message can never be sent" (invalid, unsubscribed, unreachable). */
const permanentCodes = new Set([21211, 21217, 21408, 21610, 21612, 21614, 21602, 21604, 21617, 30006, 30007])
/** Credentials or account problems: every message fails until an operator acts. */
const providerCodes = new Set([20003, 20005, 20404, 21606, 21659])

export function classifyTwilioError(error: unknown, retryAfterMs?: number): DeliveryError {
  if (error instanceof DeliveryError) return error
  const e = error as { status?: number; code?: number | string; message?: string }
  const status = typeof e.status === 'number' ? e.status : undefined
  const code = typeof e.code === 'number' ? e.code : undefined
  const text = `${status ?? ''}${code ? `/${code}` : ''} ${e.message ?? String(error)}`.trim()
  const options = { cause: error, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) }
  if (status === undefined) {
    const retryable = typeof e.code === 'string' && networkErrorCodes.has(e.code)
    return new DeliveryError(
      'retryable',
      `TWILIO_${retryable ? e.code : 'NETWORK'}`,
      `Twilio unreachable (${text})`,
      options,
    )
  }
  if (status === 401 || (code !== undefined && providerCodes.has(code))) {
    return new DeliveryError(
      'provider',
      `TWILIO_${code ?? status}`,
      `Twilio rejected Herald's account (${text})`,
      options,
    )
  }
  if (code === 20429 || isRetryableStatus(status)) {
    return new DeliveryError(
      'retryable',
      `TWILIO_${code ?? status}`,
      `Twilio temporary failure (${text})`,
      options,
    )
  }
  if (code !== undefined && permanentCodes.has(code)) {
    return new DeliveryError('permanent', `TWILIO_${code}`, `Twilio refused the message (${text})`, options)
  }
  return new DeliveryError(
    'permanent',
    `TWILIO_${code ?? status}`,
    `Twilio refused the message (${text})`,
    options,
  )
}

interface ResponseLike {
  statusCode: number
  headers?: Record<string, string | string[] | undefined>
}

export function createSmsChannel(options: SmsOptions): Channel {
  const lastResponse = new AsyncLocalStorage<{ response?: ResponseLike }>()
  const inner = new twilio.RequestClient({ timeout: options.timeoutMs ?? 15_000, keepAlive: true })
  // The SDK builds RestException from the response it gets here; keep the response for this call.
  const httpClient = Object.create(inner) as typeof inner
  httpClient.request = async (opts) => {
    const response = (await inner.request(opts)) as unknown as ResponseLike
    const store = lastResponse.getStore()
    if (store) store.response = response
    return response as never
  }
  const client = twilio(options.accountSid, options.authToken, { httpClient, autoRetry: false })
  if (options.apiUrl) client.api.baseUrl = options.apiUrl
  return {
    name: 'sms',
    async send(record: NotificationRecord, signal: AbortSignal): Promise<SendResult> {
      signal.throwIfAborted()
      const store: { response?: ResponseLike } = {}
      try {
        const message = await lastResponse.run(store, () =>
          client.messages.create({ to: record.to, from: options.from, body: record.message }),
        )
        return { providerId: message.sid }
      } catch (error) {
        const header = store.response?.headers?.['retry-after']
        throw classifyTwilioError(error, parseRetryAfter(Array.isArray(header) ? header[0] : header))
      }
    },
    async close() {},
  }
}
