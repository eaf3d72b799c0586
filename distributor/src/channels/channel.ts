// One interface for every provider. A channel sends one notification and, when it fails, throws a
// DeliveryError that says what kind of failure it was (decided once, in the channel's classification).
import { HeraldError } from '@herald/shared/errors'
import type { NotificationRecord } from '@herald/shared/notification'

/**
 * retryable: try again later (network, timeouts, 408/425/429/5xx, SMTP 4xx).
 * permanent: this message can never succeed (bad address, rejected payload): dead-letter it now.
 * provider: the provider or Herald's credentials are broken for every message: pause, never dead-letter.
 */
export type FailureClass = 'retryable' | 'permanent' | 'provider'

export class DeliveryError extends HeraldError {
  readonly failureClass: FailureClass
  /** Server-requested wait before the next attempt (Retry-After), in milliseconds. */
  readonly retryAfterMs: number | undefined

  constructor(
    failureClass: FailureClass,
    code: string,
    message: string,
    options: { cause?: unknown; retryAfterMs?: number } = {},
  ) {
    super(code, message, { retryable: failureClass !== 'permanent', cause: options.cause })
    this.failureClass = failureClass
    this.retryAfterMs = options.retryAfterMs
  }
}

export interface SendResult {
  /** The provider's id for the accepted message (SMTP message id, Twilio SID, ...). */
  providerId?: string
}

export interface Channel {
  readonly name: string
  /**
   * For channels whose destinations fail independently (webhooks): the configured destination a record goes
   * to. Failures are then counted by a breaker per destination, so one broken destination pauses only its
   * own records. Without it (or when it returns undefined) the channel's single breaker applies.
   */
  destinationOf?(record: NotificationRecord): string | undefined
  send(record: NotificationRecord, signal: AbortSignal): Promise<SendResult>
  close(): Promise<void>
}
