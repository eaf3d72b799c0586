// Email through an SMTP relay with nodemailer (pooled connections). The SMTP Message-ID is derived from the
// notification id, so mail clients fold the duplicates that at-least-once delivery can cause.
import type { NotificationRecord } from '@herald/shared/notification'
import nodemailer from 'nodemailer'
import { type Channel, DeliveryError, type SendResult } from './channel.ts'

export interface EmailOptions {
  smtpUrl: string
  from: string
  maxConnections?: number
  /** Socket and greeting timeouts, ms. */
  timeoutMs?: number
}

export function messageIdFor(id: string): string {
  return `<${id}@herald>`
}

const networkCodes = new Set([
  'ECONNECTION',
  'ETIMEDOUT',
  'ESOCKET',
  'EDNS',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPROTOCOL',
])

/** SMTP reply codes, read from nodemailer's `responseCode` (its `code` names the stage, not the reply). */
export function classifySmtpError(error: unknown): DeliveryError {
  if (error instanceof DeliveryError) return error
  const e = error as { responseCode?: number; code?: string; message?: string }
  const reply = e.responseCode
  const text = `${reply ?? e.code ?? 'error'}: ${e.message ?? String(error)}`
  if (reply === 535 || reply === 534 || reply === 530 || e.code === 'EAUTH') {
    return new DeliveryError('provider', 'SMTP_AUTH', `SMTP credentials rejected (${text})`, { cause: error })
  }
  if (reply !== undefined && reply >= 500) {
    return new DeliveryError('permanent', `SMTP_${reply}`, `SMTP rejected the message (${text})`, {
      cause: error,
    })
  }
  if (reply !== undefined && reply >= 400) {
    return new DeliveryError('retryable', `SMTP_${reply}`, `SMTP temporary failure (${text})`, {
      cause: error,
    })
  }
  if (e.code !== undefined && networkCodes.has(e.code)) {
    return new DeliveryError('retryable', `SMTP_${e.code}`, `SMTP relay unreachable (${text})`, {
      cause: error,
    })
  }
  return new DeliveryError('retryable', 'SMTP_UNKNOWN', `SMTP send failed (${text})`, { cause: error })
}

export function createEmailChannel(options: EmailOptions): Channel {
  const timeout = options.timeoutMs ?? 15_000
  const transport = nodemailer.createTransport({
    url: options.smtpUrl,
    pool: true,
    maxConnections: options.maxConnections ?? 5,
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
  })
  return {
    name: 'email',
    async send(record: NotificationRecord, signal: AbortSignal): Promise<SendResult> {
      signal.throwIfAborted()
      try {
        const info = await transport.sendMail({
          from: options.from,
          to: record.to,
          subject: record.subject ?? 'Notification',
          text: record.message,
          messageId: messageIdFor(record.id),
          headers: { 'X-Herald-Id': record.id },
        })
        if (info.rejected.length > 0) {
          throw new DeliveryError(
            'permanent',
            'SMTP_REJECTED',
            `recipient rejected: ${info.rejected.join(', ')}`,
          )
        }
        return { providerId: info.messageId }
      } catch (error) {
        throw classifySmtpError(error)
      }
    },
    async close() {
      transport.close()
    },
  }
}
