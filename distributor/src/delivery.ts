// Delivering one notification: attempts, backoff between them, and the decision to dead-letter.
import type { NotificationRecord } from '@herald/shared/notification'
import { abortableSleep, type BackoffPolicy, backoffDelay } from './backoff.ts'
import { type Channel, DeliveryError, type FailureClass } from './channels/channel.ts'

export type DeliveryOutcome =
  | { outcome: 'delivered'; attempts: number; providerId?: string }
  | { outcome: 'dead-letter'; attempts: number; failureClass: FailureClass; error: DeliveryError }

export interface DeliveryOptions {
  maxAttempts: number
  backoff: BackoffPolicy
  /** Longest wait between attempts inside one batch (a third of the session timeout at most). */
  maxInlineWaitMs: number
  signal: AbortSignal
  onAttemptFailed?: (attempt: number, error: DeliveryError, waitMs: number | undefined) => void
}

export function asDeliveryError(error: unknown): DeliveryError {
  if (error instanceof DeliveryError) return error
  return new DeliveryError(
    'retryable',
    'DELIVERY_FAILED',
    error instanceof Error ? error.message : String(error),
    {
      cause: error,
    },
  )
}

/**
 * Sends until the provider accepts, a permanent error, or `maxAttempts`. Provider and configuration
 * failures are retried like transient ones here; the channel breaker (failure handling) pauses on them.
 * Throws only when the signal aborts (shutdown): the message then stays unfinished and is redelivered.
 */
export async function deliver(
  channel: Channel,
  record: NotificationRecord,
  options: DeliveryOptions,
): Promise<DeliveryOutcome> {
  for (let attempt = 1; ; attempt++) {
    options.signal.throwIfAborted()
    try {
      const result = await channel.send(record, options.signal)
      return {
        outcome: 'delivered',
        attempts: attempt,
        ...(result.providerId ? { providerId: result.providerId } : {}),
      }
    } catch (raw) {
      options.signal.throwIfAborted()
      const error = asDeliveryError(raw)
      if (error.failureClass === 'permanent' || attempt >= options.maxAttempts) {
        options.onAttemptFailed?.(attempt, error, undefined)
        return { outcome: 'dead-letter', attempts: attempt, failureClass: error.failureClass, error }
      }
      const wait = Math.min(
        backoffDelay(options.backoff, attempt, error.retryAfterMs),
        options.maxInlineWaitMs,
      )
      options.onAttemptFailed?.(attempt, error, wait)
      await abortableSleep(wait, options.signal)
    }
  }
}
