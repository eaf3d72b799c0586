// Delivering one notification: attempts, backoff between them, the breaker, and the decision to dead-letter.
import type { NotificationRecord } from '@herald/shared/notification'
import { abortableSleep, type BackoffPolicy, backoffDelay } from './backoff.ts'
import type { Breaker } from './breaker.ts'
import { type Channel, DeliveryError, type FailureClass } from './channels/channel.ts'

export type DeliveryOutcome =
  | { outcome: 'delivered'; attempts: number; providerId?: string }
  | { outcome: 'dead-letter'; attempts: number; failureClass: FailureClass; error: DeliveryError }
  /** The next attempt is due later than a handler may wait: release the message and come back. */
  | { outcome: 'deferred'; attempts: number; waitMs: number; error: DeliveryError }
  /** The channel's breaker is open: the attempt did not count; come back after the probe. */
  | { outcome: 'breaker-open'; attempts: number }

export interface DeliveryOptions {
  maxAttempts: number
  /** Attempts made before (kept in Redis across restarts and deferrals). */
  previousAttempts: number
  backoff: BackoffPolicy
  /** Longest wait between attempts inside one batch (a third of the session timeout at most). */
  maxInlineWaitMs: number
  breaker: Breaker
  signal: AbortSignal
  /** Called after each counted failed attempt, before waiting (persist the attempt count, log). */
  onAttemptFailed?: (
    attempt: number,
    error: DeliveryError,
    waitMs: number | undefined,
  ) => Promise<void> | void
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
 * Sends until the provider accepts, a permanent error, or `maxAttempts`. Throws only when the signal
 * aborts (shutdown): the message then stays unfinished and is delivered again later.
 */
export async function deliver(
  channel: Channel,
  record: NotificationRecord,
  options: DeliveryOptions,
): Promise<DeliveryOutcome> {
  const { breaker, signal } = options
  for (let attempt = options.previousAttempts + 1; ; attempt++) {
    signal.throwIfAborted()
    if (breaker.blocking) return { outcome: 'breaker-open', attempts: attempt - 1 }
    try {
      const result = await channel.send(record, signal)
      breaker.recordSuccess()
      return {
        outcome: 'delivered',
        attempts: attempt,
        ...(result.providerId ? { providerId: result.providerId } : {}),
      }
    } catch (raw) {
      signal.throwIfAborted()
      const error = asDeliveryError(raw)
      if (breaker.recordFailure(error) !== 'counted')
        return { outcome: 'breaker-open', attempts: attempt - 1 }
      if (error.failureClass === 'permanent' || attempt >= options.maxAttempts) {
        await options.onAttemptFailed?.(attempt, error, undefined)
        return { outcome: 'dead-letter', attempts: attempt, failureClass: error.failureClass, error }
      }
      const wait = backoffDelay(options.backoff, attempt, error.retryAfterMs)
      await options.onAttemptFailed?.(attempt, error, wait)
      if (wait > options.maxInlineWaitMs)
        return { outcome: 'deferred', attempts: attempt, waitMs: wait, error }
      await abortableSleep(wait, signal)
    }
  }
}
